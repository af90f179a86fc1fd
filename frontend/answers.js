// Sending answers until the server has them: the same Idempotency-Key on every retry (a
// retry after a lost answer is recognised, not stored twice), the mask kept in the browser
// (drafts.js) meanwhile, and a banner that says so while the line is down.
import { $, api } from "./api.js";
import { dropDraft, pendingDrafts } from "./drafts.js";

const RETRY_SECONDS = [1, 2, 4, 8, 15, 30];
let retryNow = null;

function offline(text, seconds) {
  $("net").hidden = false;
  let left = seconds;
  const tick = () => {
    $("net-text").textContent = `${text} Your label is kept on this device. Retrying in ${left} s.`;
  };
  tick();
  return new Promise((resolve) => {
    const timer = setInterval(() => {
      left -= 1;
      if (left <= 0) finish();
      else tick();
    }, 1000);
    const finish = () => {
      clearInterval(timer);
      window.removeEventListener("online", finish);
      retryNow = null;
      resolve();
    };
    retryNow = finish;
    window.addEventListener("online", finish);
  });
}
$("net-retry").addEventListener("click", () => retryNow && retryNow());

// POST an answer until the server acknowledges it. A 4xx other than 408 and 429 is final (the
// lease went to someone else, the slice was skipped); the draft is dropped then.
export async function send(record) {
  for (let attempt = 0; ; attempt += 1) {
    try {
      const stored = await api("POST", `/api/tasks/${record.lease}/annotations`, record.body, {
        "Idempotency-Key": record.key,
      });
      $("net").hidden = true;
      await dropDraft(record.lease);
      return { stored };
    } catch (error) {
      const final = error.status >= 400 && error.status < 500 && ![408, 429].includes(error.status);
      if (final) {
        $("net").hidden = true;
        await dropDraft(record.lease);
        return { error };
      }
      const why = error.status ? `The server answered ${error.status}.` : "You seem to be offline.";
      await offline(why, RETRY_SECONDS[Math.min(attempt, RETRY_SECONDS.length - 1)]);
    }
  }
}

// Answers submitted before a reload or a crash and never acknowledged go out first.
export async function flushPending() {
  for (const record of await pendingDrafts()) await send(record);
}
