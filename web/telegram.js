// The page inside Telegram: the bot's Mini App, opened from its chat's menu button.
//
// Telegram opens the page with its launch parameters in the URL's fragment (#tgWebAppData=...,
// the signed init data; kept in sessionStorage by Telegram's script for reloads). Only then is
// Telegram's own script loaded (telegram-web-app.js, as the npm package @twa-dev/sdk ships it:
// served with the page and precached by the service worker, no CDN); outside Telegram the page
// loads nothing more than before.

const SCRIPT = "node_modules/@twa-dev/sdk/dist/telegram-web-apps.js";
export const SEND_TEXT = "Send to the bot";

// Telegram's theme (themeParams) -> the page's colours (style.css).
const THEME = {
  "--paper": "bg_color",
  "--ink": "text_color",
  "--muted": "hint_color",
  "--accent": "button_color",
  "--on-accent": "button_text_color",
  "--accent-dark": "link_color",
  "--track": "secondary_bg_color",
};

function openedByTelegram() {
  if (location.hash.includes("tgWebAppData=")) return true;
  try {
    return (sessionStorage.getItem("__telegram__initParams") ?? "").includes("tgWebAppData");
  } catch {
    return false; // storage refused: not a reload inside Telegram
  }
}

function loadScript(src) {
  return new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = src;
    script.onload = resolve;
    script.onerror = () => reject(new Error(`${src} did not load`));
    document.head.append(script);
  });
}

function applyTheme(app) {
  for (const [variable, key] of Object.entries(THEME)) {
    const colour = app.themeParams[key];
    if (colour) document.documentElement.style.setProperty(variable, colour);
  }
  document.querySelector('meta[name="theme-color"]')?.setAttribute("content", app.backgroundColor);
}

// Telegram.WebApp when Telegram opened the page with signed init data; null otherwise (the page
// alone, as before). `onBack`: the back button; `onSend`: the main button, "Send to the bot".
export async function startTelegram({ onBack, onSend }) {
  if (!openedByTelegram()) return null;
  try {
    await loadScript(SCRIPT);
  } catch (error) {
    console.warn("Telegram's script did not load: the page works alone", error);
    return null;
  }
  const app = window.Telegram?.WebApp;
  if (!app?.initData) return null;
  app.ready();
  app.expand();
  applyTheme(app);
  app.onEvent("themeChanged", () => applyTheme(app));
  app.BackButton.onClick(onBack);
  app.MainButton.setText(SEND_TEXT);
  app.MainButton.onClick(onSend);
  document.body.dataset.telegram = "yes";
  return app;
}

// The language Telegram gives for the signed user ("es", "en-GB", ...), or none.
export const userLanguage = (app) => app?.initDataUnsafe?.user?.language_code ?? null;

// A short buzz where the phone has one: "light" for a frozen frame, "success" or "error" for
// what became of a photo sent.
export function buzz(app, kind) {
  if (!app?.HapticFeedback) return;
  if (kind === "light") app.HapticFeedback.impactOccurred("light");
  else app.HapticFeedback.notificationOccurred(kind);
}
