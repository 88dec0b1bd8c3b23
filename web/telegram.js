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
// Text the page writes in a theme colour, and what it stands on: Telegram's own hint, link and
// button colours fall short of WCAG AA's 4.5:1 in its default themes (#999 hints on white are
// 2.8:1), so each is moved towards black or white until it passes, keeping its hue.
const TEXT_ON = [
  ["--ink", "--paper"],
  ["--muted", "--paper"],
  ["--accent-dark", "--paper"],
  ["--accent", "--on-accent"],
];
// WCAG AA's 4.5:1, with room for checkers that round differently (axe measured 4.48 for 4.50).
const AA = 4.6;

// #rrggbb -> [r, g, b] in 0..255 (Telegram sends #rrggbb).
const rgb = (hex) => [1, 3, 5].map((at) => parseInt(hex.slice(at, at + 2), 16));
const hex = (colour) => `#${colour.map((v) => Math.round(v).toString(16).padStart(2, "0")).join("")}`;

// WCAG 2's relative luminance and contrast ratio.
function luminance(colour) {
  const [r, g, b] = colour.map((v) => {
    const c = v / 255;
    return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  });
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}

function contrast(a, b) {
  const [light, dark] = [luminance(a), luminance(b)].sort((x, y) => y - x);
  return (light + 0.05) / (dark + 0.05);
}

// `colour` mixed towards black or white (whichever is further from `against`) in 5 % steps
// until its contrast with `against` reaches AA.
function readable(colour, against) {
  const target = luminance(against) > 0.18 ? [0, 0, 0] : [255, 255, 255];
  let mixed = colour;
  for (let step = 1; step <= 20 && contrast(mixed, against) < AA; step += 1) {
    mixed = colour.map((v, i) => Math.round(v + ((target[i] - v) * step) / 20));
  }
  return mixed;
}

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
  const root = document.documentElement;
  for (const [variable, key] of Object.entries(THEME)) {
    const colour = app.themeParams[key];
    if (/^#[0-9a-f]{6}$/i.test(colour ?? "")) root.style.setProperty(variable, colour);
  }
  const current = (variable) => rgb(getComputedStyle(root).getPropertyValue(variable).trim());
  for (const [text, ground] of TEXT_ON) {
    root.style.setProperty(text, hex(readable(current(text), current(ground))));
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
  // The page alone uploads nothing; here a photo goes to the bot when the user says so.
  document.querySelector("header p").textContent =
    "Point your camera at a flower, or choose a photo. The model runs on this device: a photo " +
    `goes to the bot only when you tap “${SEND_TEXT}”.`;
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
