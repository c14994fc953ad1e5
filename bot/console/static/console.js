// The console's only script (no build step). Every write is a form with data-api="<route>":
// its fields go as JSON to that route of /api/console/ with the session's CSRF token, and the
// answer is shown in the status line. The desk's live feed (server-sent events) makes the
// page re-read its live parts ([data-live]) when something it shows may have changed.
"use strict";
(function () {
  const main = document.getElementById("main");
  if (!main) return;
  const csrf = main.dataset.csrf;
  const flashBox = document.getElementById("flash");
  let flashTimer = null;

  function flash(text, kind) {
    const p = document.createElement("p");
    p.className = "alert " + (kind || "ok");
    p.id = "flash-message";
    p.setAttribute("role", kind === "bad" ? "alert" : "status");
    p.textContent = text;
    flashBox.replaceChildren(p);
    clearTimeout(flashTimer);
    if (kind !== "bad") flashTimer = setTimeout(() => flashBox.replaceChildren(), 8000);
  }

  async function api(url, body) {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body),
    });
    if (response.status === 401) {
      location.assign("/console/login?next=" + encodeURIComponent(location.pathname + location.search));
      throw new Error("请重新登录 (signed out)");
    }
    const text = await response.text();
    const data = text ? JSON.parse(text) : {};
    if (!response.ok) throw new Error(data.error || "HTTP " + response.status);
    return data;
  }

  // Form fields -> JSON: empty fields are left out; data-kind="bool" sends true/false;
  // data-kind="plan" turns lines "2026-12-20 500" into instalments.
  function bodyOf(form) {
    const body = {};
    for (const el of form.elements) {
      if (!el.name || el.disabled) continue;
      if (el.type === "radio" && !el.checked) continue;
      let value = el.type === "checkbox" ? el.checked : el.value.trim();
      if (value === "") continue;
      if (el.dataset.kind === "bool") value = value === true || value === "true";
      if (el.dataset.kind === "plan") {
        value = value.split(/\n+/).filter((l) => l.trim()).map((line) => {
          const [due, amount] = line.trim().split(/[\s,，]+/);
          return { due: due, amount: amount };
        });
      }
      body[el.name] = value;
    }
    const holder = form.closest("[data-case-id]") || document.querySelector("[data-case-id]");
    if (!("case_id" in body) && holder && holder.dataset.caseId) body.case_id = holder.dataset.caseId;
    return body;
  }

  function verdictText(v) {
    if (v.verdict === "block") {
      return ["已拦截 Blocked: " + v.rules.join(", ") + " — " + v.reasons.join("; "), "bad"];
    }
    if (v.verdict === "defer") {
      // Beijing time, as every time on these pages (not the browser's own zone).
      const until = new Date(v.until).toLocaleString("zh-CN", {
        hour12: false, timeZone: "Asia/Shanghai", month: "2-digit", day: "2-digit",
        hour: "2-digit", minute: "2-digit",
      });
      return ["已排队，将于 " + until + " 发送 (deferred until then: " + v.reasons.join("; ") +
        " — " + v.rules.join(", ") + ")", "warn"];
    }
    return ["已发送 Sent", "ok"];
  }

  document.addEventListener("submit", async (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.dataset.api) return;
    event.preventDefault();
    if (form.dataset.confirm && !confirm(form.dataset.confirm)) return;
    if (form.dataset.needs) {
      // Say what is missing here, in words, rather than send and show the API's reason.
      const [fields, message] = form.dataset.needs.split("|");
      const filled = fields.split(",").some((n) => {
        const el = form.elements.namedItem(n);
        return el && !el.disabled && el.value.trim() !== "" && el.value !== el.defaultValue;
      });
      if (!filled) { flash(message, "bad"); return; }
    }
    const buttons = form.querySelectorAll("button");
    buttons.forEach((b) => (b.disabled = true));
    try {
      const data = await api(form.dataset.api, bodyOf(form));
      if (data && data.verdict) {
        const [text, kind] = verdictText(data);
        flash(text, kind);
        if (data.verdict !== "block") {
          form.reset();
          form.querySelectorAll("select[data-shows]").forEach((sel) => {
            delete document.getElementById(sel.dataset.shows).dataset.draft;
            showTemplate(sel);
          });
        }
      } else {
        flash(form.dataset.done || "完成 Done", "ok");
        if (form.dataset.reset !== undefined) form.reset();
      }
      if (form.dataset.after === "page") {
        // The page is read again: what was done is said once more after the reload.
        const shown = document.getElementById("flash-message");
        if (shown) sessionStorage.setItem("console-flash", shown.textContent + "|" + shown.className);
        setTimeout(() => location.reload(), 300);
      } else {
        refresh();
      }
    } catch (err) {
      flash(err.message, "bad");
    } finally {
      buttons.forEach((b) => (b.disabled = false));
    }
  });

  const carried = sessionStorage.getItem("console-flash");
  if (carried) {
    sessionStorage.removeItem("console-flash");
    const [text, cls] = carried.split("|");
    flash(text, (cls || "").replace("alert", "").trim() || "ok");
  }

  // Only the fields that apply to the chosen option (data-when="how=return").
  function showApplicable(select) {
    const form = select.form;
    if (!form) return;
    for (const el of form.querySelectorAll("[data-when]")) {
      const [name, values] = el.dataset.when.split("=");
      if (name !== select.name) continue;
      const on = values.split(",").includes(select.value);
      el.hidden = !on;
      el.querySelectorAll("input, select, textarea").forEach((i) => (i.disabled = !on));
    }
  }
  document.querySelectorAll("select[data-toggles]").forEach(showApplicable);

  document.addEventListener("change", (event) => {
    const el = event.target;
    if (el instanceof HTMLSelectElement && el.dataset.autosubmit !== undefined) el.form.submit();
    if (el instanceof HTMLSelectElement && el.dataset.shows) showTemplate(el);
    if (el instanceof HTMLSelectElement && el.dataset.toggles !== undefined) showApplicable(el);
  });

  // The composer sends a template or free text, never both: a chosen template shows its text
  // (filled in for this account) in the box, which is then not editable; clearing the choice
  // gives the box back as it was.
  function showTemplate(select) {
    const box = document.getElementById(select.dataset.shows);
    if (!box) return;
    const option = select.selectedOptions[0];
    if (select.value) {
      if (!box.disabled) box.dataset.draft = box.value;
      box.value = option ? option.title : "";
      box.disabled = true;
    } else if (box.disabled) {
      box.disabled = false;
      box.value = box.dataset.draft !== undefined ? box.dataset.draft : box.defaultValue;
    }
  }

  // Re-reads this page and swaps in its live part (what someone else's action may change).
  let refreshing = null;
  let again = false;
  async function refresh() {
    if (refreshing) { again = true; return; }
    refreshing = (async () => {
      try {
        const response = await fetch(location.href, { credentials: "same-origin" });
        const doc = new DOMParser().parseFromString(await response.text(), "text/html");
        for (const live of document.querySelectorAll("[data-live]")) {
          const fresh = doc.getElementById(live.id);
          if (!fresh) { location.reload(); return; }  // signed out, or the page is gone
          for (const [k, v] of Object.entries(fresh.dataset)) live.dataset[k] = v;
          live.innerHTML = fresh.innerHTML;
        }
        document.dispatchEvent(new CustomEvent("console:refreshed"));
      } catch (err) {
        /* offline for a moment: the next event or reconnect re-reads */
      }
    })();
    await refreshing;
    refreshing = null;
    if (again) { again = false; refresh(); }
  }

  let timer = null;
  function soon() {
    clearTimeout(timer);
    timer = setTimeout(refresh, 250);
  }

  const dot = document.getElementById("live-dot");
  if (window.EventSource) {
    const source = new EventSource("/api/console/events");
    const page = main.dataset.page;
    const account = main.dataset.account;
    const kinds = ["case_opened", "case_claimed", "case_released", "case_reassigned",
      "case_note", "case_expired", "case_resolved", "inbound", "unmatched"];
    source.addEventListener("ready", () => {
      if (dot) dot.dataset.state = "on";
      if (source.connectedBefore) soon();
      source.connectedBefore = true;
    });
    for (const kind of kinds) {
      source.addEventListener(kind, (e) => {
        const data = JSON.parse(e.data);
        // The SLA step's notification: a supervisor is told whichever page is open.
        if (kind === "case_expired" && main.dataset.role === "supervisor" && data.detail.notify) {
          flash("案件超时未认领 SLA passed unclaimed: " + data.account_id + " (" + data.detail.reason + ")", "warn");
        }
        if (page === "case" && data.account_id !== account) return;
        if ((page === "unmatched") !== (kind === "unmatched")) return;
        soon();
      });
    }
    source.onerror = () => { if (dot) dot.dataset.state = "off"; };
    window.addEventListener("pagehide", () => source.close());
  }
})();
