// Photos sent to the bot from inside Telegram (POST /webapp/photo, bot/webapp.py), kept in
// IndexedDB from the tap on "Send to the bot" until the bot has answered, so that a photo sent
// offline goes when the network is back (the "online" event, a retry timer, or the next visit).
//
// A queue of the page's own rather than Workbox's background sync: each send must carry the init
// data of the Telegram session it goes in (a request replayed as it was queued carries old init
// data, refused once older than WEBAPP_MAX_AGE_SECONDS), and the page says when it went. Each
// photo has its idempotency key from the tap on: the bot stores a key once, so a send whose
// answer was lost on the way back is sent again without a second answer.

const DATABASE = "flowerbot-sends";
const STORE = "sends";
// While photos wait, the queue tries again this often (besides the "online" event).
const RETRY_MS = 15_000;

function openDatabase() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DATABASE, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE, { keyPath: "key" });
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

// One IndexedDB transaction on the store; resolves with `work`'s request's result once committed.
async function inStore(mode, work) {
  const database = await openDatabase();
  try {
    return await new Promise((resolve, reject) => {
      const transaction = database.transaction(STORE, mode);
      const request = work(transaction.objectStore(STORE));
      transaction.oncomplete = () => resolve(request.result);
      transaction.onerror = () => reject(transaction.error);
    });
  } finally {
    database.close();
  }
}

// The queue of the signed user (`userId`), sending with `initData`. `report(event, detail)`
// says what happened: "kept" (offline: {waiting}), "sent" ({body}), "refused" ({error}).
export function sendQueue({ initData, userId, report }) {
  let running = null;
  let again = false;
  let timer = null;

  async function post(item) {
    const form = new FormData();
    form.append("init_data", initData);
    form.append("key", item.key);
    form.append("answer", item.answer);
    form.append("photo", item.photo, item.name);
    return fetch("/webapp/photo", { method: "POST", body: form });
  }

  function retryLater() {
    clearTimeout(timer);
    timer = setTimeout(drain, RETRY_MS);
  }

  async function sendAll() {
    const waiting = (await inStore("readonly", (store) => store.getAll()))
      .filter((item) => item.userId === userId)
      .sort((a, b) => a.at - b.at);
    for (const [position, item] of waiting.entries()) {
      let response;
      try {
        response = await post(item);
      } catch {
        report("kept", { waiting: waiting.length - position });
        return retryLater();
      }
      // 409: the bot is answering this key right now; 5xx: the bot or its proxy is down.
      if (response.status === 409 || response.status >= 500) {
        report("kept", { waiting: waiting.length - position });
        return retryLater();
      }
      const body = await response.json().catch(() => ({}));
      if (response.status === 401) {
        // This session's init data is refused (too old: the page was left open too long): the
        // photo waits for the next visit, which brings fresh init data.
        report("refused", { error: body.error ?? "Reopen this page from the bot." });
        return;
      }
      await inStore("readwrite", (store) => store.delete(item.key));
      if (response.ok) report("sent", { body });
      else report("refused", { error: body.error ?? `The bot refused it (HTTP ${response.status}).` });
    }
  }

  // One pass at a time; a call during a pass runs one more after it (a photo kept meanwhile).
  function drain() {
    if (running) {
      again = true;
      return running;
    }
    running = sendAll()
      .catch((error) => report("refused", { error: `Could not send: ${error.message}` }))
      .finally(() => {
        running = null;
        if (again) {
          again = false;
          drain();
        }
      });
    return running;
  }

  window.addEventListener("online", drain);

  return {
    drain,
    // Keeps the photo (a Blob), with the page's answer (JSON text), then sends what waits.
    async send(photo, name, answer) {
      const item = { key: crypto.randomUUID(), userId, photo, name, answer, at: Date.now() };
      await inStore("readwrite", (store) => store.put(item));
      return drain();
    },
  };
}
