// Small behaviours shared by every page; screens add their own in static/js/<screen>.js.
// No inline scripts or on*= attributes anywhere: the Content-Security-Policy refuses them, so
// markup asks for behaviour with data- attributes handled here.
document.addEventListener("click", (event) => {
  // Close open header menus when clicking elsewhere.
  document.querySelectorAll("details.launcher[open], details.user-menu[open]").forEach((menu) => {
    if (!menu.contains(event.target)) menu.removeAttribute("open");
  });
});
// <select data-submit-on-change>: choosing an option submits its form (the company switch).
document.addEventListener("change", (event) => {
  const select = event.target.closest && event.target.closest("select[data-submit-on-change]");
  if (select && select.form) select.form.submit();
});
// <form data-confirm="question">: a plain (non-htmx) form that asks before it posts.
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (form.dataset && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
    event.preventDefault();
  }
});
// Flash messages fade after a while: the page's, and those an HTMX answer brings out of band
// (integrations/middleware.py).
const fadeMessages = (root) =>
  setTimeout(() => root.querySelectorAll(".message").forEach((m) => m.remove()), 8000);
fadeMessages(document);
document.addEventListener("htmx:oobAfterSwap", (event) => {
  if (event.detail.target && event.detail.target.id === "messages") fadeMessages(event.detail.target);
});
