// Rewards in the studio, beside the slice: the points total in the header's counter, and a
// notice for what happened since the volunteer last looked (a badge earned, a new level,
// crowd answers confirmed by other volunteers while they were away). What a notice shows is
// marked seen at once (POST /api/rewards/me/seen with exactly what it showed), so a reload
// never repeats it and a badge won meanwhile still gets its own notice.
import { $, api, element } from "./api.js";

const rewards = { total: null, level: null };

// The points in the header's counter, a link to the points page (on a phone the only one
// from the studio: the site's menu keeps that row for the slice).
export function pointsLink() {
  if (rewards.total === null) return "";
  return element("a", { class: "pts", href: "/rewards", title: "Your points, badges and the leaderboard", text: ` · ${rewards.total} pts` });
}

function sinceLine(since) {
  if (since.answers > 0 && since.points >= 0) {
    const answers = since.answers === 1 ? "1 earlier answer" : `${since.answers} earlier answers`;
    return `+${since.points} points: other volunteers agreed with ${answers}.`;
  }
  if (since.points < 0) return `${since.points} points: answers quality control set aside were taken back.`;
  if (since.points > 0) return `+${since.points} points for hard slices you answered well.`;
  return null;
}

function lines(me) {
  const found = [];
  const since = sinceLine(me.since);
  if (since) found.push({ kind: "award-points", text: since });
  for (const badge of me.new_badges) {
    const points = badge.points ? ` (+${badge.points} points)` : "";
    found.push({ kind: "award-badge", text: `Badge earned: ${badge.name}${points}. ${badge.description}` });
  }
  if (me.level_up) found.push({ kind: "award-level", text: `New level: ${me.level.number}, ${me.level.name}.` });
  return found;
}

// Read the rewards, update the counter (``onTotal``), and show what is new; never throws (the
// studio works on without them).
export async function checkRewards(onTotal) {
  let me;
  try {
    me = await api("GET", "/api/rewards/me");
  } catch {
    return;
  }
  rewards.total = me.total;
  rewards.level = me.level;
  onTotal?.();
  const found = lines(me);
  if (!found.length) return;
  const list = $("reward-notice-list");
  // A notice still open keeps its lines; the new ones come first.
  list.prepend(...found.map(({ kind, text }) => element("li", { class: kind, text })));
  $("reward-notice").hidden = false;
  try {
    await api("POST", "/api/rewards/me/seen", {
      badges: me.new_badges.map((b) => b.id),
      level: me.level.number,
      through: me.since.through,
    });
  } catch {
    // Not marked: the notice comes again next time, which is better than never.
  }
}

export function setUpNotices() {
  $("reward-notice-ok").addEventListener("click", () => {
    $("reward-notice").hidden = true;
    $("reward-notice-list").replaceChildren();
  });
}
