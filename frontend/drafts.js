// Masks in progress and answers not yet acknowledged, kept in the browser (IndexedDB) until
// the server has stored them: a reload, a crash or a dropped connection loses nothing.
//
// One record per lease: { lease, counts (RLE), width, height, key (the Idempotency-Key, kept
// for every retry), pending (submitted, not yet acknowledged), body (the request, when
// pending), updated }. Without IndexedDB (some private modes) drafts live in memory only.

const DB_NAME = "mscrowd-studio";
const STORE = "drafts";
const memory = new Map();
let opening = null;

function open() {
  if (!("indexedDB" in window)) return Promise.resolve(null);
  if (!opening) {
    opening = new Promise((resolve) => {
      const request = indexedDB.open(DB_NAME, 1);
      request.onupgradeneeded = () => request.result.createObjectStore(STORE, { keyPath: "lease" });
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => resolve(null);
      request.onblocked = () => resolve(null);
    });
  }
  return opening;
}

async function run(mode, work) {
  const db = await open();
  if (!db) return work(null);
  return new Promise((resolve, reject) => {
    const transaction = db.transaction(STORE, mode);
    const store = transaction.objectStore(STORE);
    let result;
    const request = work(store);
    if (request) request.onsuccess = () => { result = request.result; };
    transaction.oncomplete = () => resolve(result);
    transaction.onerror = () => reject(transaction.error);
    transaction.onabort = () => reject(transaction.error);
  });
}

export async function saveDraft(record) {
  const stored = { ...record, updated: Date.now() };
  memory.set(record.lease, stored);
  await run("readwrite", (store) => store && store.put(stored));
}

export async function loadDraft(lease) {
  const found = await run("readonly", (store) => store && store.get(lease));
  return found || memory.get(lease) || null;
}

export async function dropDraft(lease) {
  memory.delete(lease);
  await run("readwrite", (store) => store && store.delete(lease));
}

export async function pendingDrafts() {
  const all = await run("readonly", (store) => store && store.getAll());
  const records = all || [...memory.values()];
  return records.filter((record) => record.pending);
}

// Drafts of leases long gone (a slice left unfinished weeks ago) are dropped at start-up;
// answers still waiting for the server are kept whatever their age.
export async function pruneDrafts(maxAgeMs = 7 * 24 * 3600 * 1000) {
  const all = (await run("readonly", (store) => store && store.getAll())) || [...memory.values()];
  const cutoff = Date.now() - maxAgeMs;
  for (const record of all) {
    if (!record.pending && record.updated < cutoff) await dropDraft(record.lease);
  }
}
