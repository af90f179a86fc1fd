// The labelling page. Signed out: the landing page (what the project is, an example, Create
// account and Log in; account.js). Signed in: the consent a volunteer has not given yet, then
// the studio (tasks.js, with its tools in tools.js and the view in viewer.js), and the field
// guide beside it (guide.js). The header is the one every page shares (site.js).
import { askConsent, landing, next, setUpAccount } from "./account.js";
import { $ } from "./api.js";
import { setUpGuide } from "./guide.js";
import { ready as signedIn } from "./site.js";
import { beginLabelling } from "./tasks.js";
import { status } from "./ui.js";

async function start(me) {
  if (!me) {
    landing();
    return;
  }
  if (me.role === "volunteer" && !me.consent_current) {
    await askConsent();
    return;
  }
  await beginLabelling();
}

setUpAccount(start);
setUpGuide($("guide-open"));

signedIn
  .then(
    (me) => {
      // Sent here to sign in, but signed in already: straight on.
      if (me && next) window.location.assign(next);
      else return start(me);
    },
    (error) => {
      // The server could not say who this is: the forms, and why.
      landing();
      $("login-error").textContent = error.message;
    },
  )
  .catch((error) => status(error.message));
