// Imports and sync rules: the Import menu, dismissing a finished run, and Select All in the
// Import Selected picker. Error answers (409, 422, 502) are swapped in place by htmx's
// responseHandling (templates/base.html).
(() => {
  // Close the Import menu after choosing an item, and when clicking elsewhere.
  document.addEventListener("click", (event) => {
    document.querySelectorAll("details.import-menu[open]").forEach((menu) => {
      const item = event.target.closest(".import-menu-item");
      if (!menu.contains(event.target) || (item && menu.contains(item) && item.tagName === "BUTTON")) {
        setTimeout(() => menu.removeAttribute("open"), 0);
      }
    });
    const dismiss = event.target.closest("[data-dismiss-run]");
    if (dismiss) dismiss.closest(".run-progress")?.remove();
  });

  // Select All in the Import Selected picker, and the selected count.
  const refreshCount = (form) => {
    const label = form.querySelector("[data-selected-count]");
    if (label) label.textContent = `${form.querySelectorAll("input[name=linarc_id]:checked").length} selected`;
  };
  document.addEventListener("change", (event) => {
    const form = event.target.form;
    if (!form) return;
    const name = event.target.dataset.selectAll;
    if (name) form.querySelectorAll(`input[name="${name}"]`).forEach((box) => { box.checked = event.target.checked; });
    refreshCount(form);
  });
})();
