// Small behaviours shared by every page; screens add their own in static/js/<screen>.js.
document.addEventListener("click", (event) => {
  // Close open header menus when clicking elsewhere.
  document.querySelectorAll("details.launcher[open], details.user-menu[open]").forEach((menu) => {
    if (!menu.contains(event.target)) menu.removeAttribute("open");
  });
});
// Flash messages fade after a while.
setTimeout(() => document.querySelectorAll(".message").forEach((m) => m.remove()), 8000);
