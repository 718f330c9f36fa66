// cmlib book: a first visit has no colour mode stored, and the theme then logs
// "Got invalid theme mode" on every page; start such a visit in "auto" (follow the system).
if (!document.documentElement.dataset.mode) { document.documentElement.dataset.mode = "auto"; }
