// The dashboard's charts (no build step): the figures the server wrote into
// <script type="application/json" id="dashboard-data"> drawn with Chart.js (vendored in
// vendor/, loaded before this). The same file is inlined into `smsbot report` files, which
// must draw offline: nothing here fetches anything. Each chart is kept in
// window.smsbotCharts (by canvas id) so tests can read what was drawn.
"use strict";
(function () {
  const source = document.getElementById("dashboard-data");
  if (!source || typeof window.Chart === "undefined") return;
  const d = JSON.parse(source.textContent);
  const Chart = window.Chart;
  const charts = {};
  window.smsbotCharts = charts;
  // Drawn at once: a report is printed or screenshotted right after it opens.
  Chart.defaults.animation = false;
  Chart.defaults.maintainAspectRatio = false;
  Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
  const COLORS = ["#1d5fd1", "#17803d", "#f59e0b", "#b42318", "#7c3aed", "#0891b2",
                  "#db2777", "#65a30d", "#475569", "#ea580c", "#0d9488", "#9333ea"];
  const color = (i) => COLORS[i % COLORS.length];
  const STAGES = [
    ["reminded", "已提醒 Reminded"], ["delivered", "已送达 Delivered"],
    ["replied", "已回复 Replied"], ["promised", "承诺 Promised"], ["paid", "已还款 Paid"],
  ];
  const days = d.days.map((r) => r.day.slice(5));  // MM-DD

  function draw(id, config) {
    const canvas = document.getElementById(id);
    if (!canvas) return;
    charts[id] = new Chart(canvas, config);
    canvas.dataset.drawn = "yes";
  }

  function empty(labels) {
    // A chart with nothing to show still says so, instead of a blank box.
    return labels.length === 0;
  }

  draw("chart-funnel", {
    type: "bar",
    data: {
      labels: STAGES.map((s) => s[1]),
      datasets: [{ label: "账户 Accounts", data: STAGES.map((s) => d.funnel[s[0]]),
                   backgroundColor: STAGES.map((_, i) => color(i)) }],
    },
    options: { plugins: { legend: { display: false } },
               scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
  });

  draw("chart-days", {
    type: "bar",
    data: {
      labels: days,
      datasets: [
        ...STAGES.map((s, i) => ({ type: "line", label: s[1], data: d.days.map((r) => r[s[0]]),
                                   borderColor: color(i), backgroundColor: color(i),
                                   tension: 0.2, yAxisID: "y" })),
        { type: "bar", label: "回收 Recovered ¥", data: d.days.map((r) => Number(r.recovered)),
          backgroundColor: "rgba(23,128,61,.25)", yAxisID: "money" },
      ],
    },
    options: {
      interaction: { mode: "index", intersect: false },
      scales: {
        y: { beginAtZero: true, ticks: { precision: 0 }, title: { display: true, text: "账户 accounts" } },
        money: { beginAtZero: true, position: "right", grid: { drawOnChartArea: false },
                 title: { display: true, text: "¥" } },
      },
      plugins: { legend: { labels: { boxWidth: 12 } } },
    },
  });

  const intentNames = [...new Set(d.intents.flatMap((r) => Object.keys(r.intents)))].sort();
  draw("chart-intents", {
    type: "bar",
    data: {
      labels: days,
      datasets: intentNames.map((name, i) => ({
        label: name, data: d.intents.map((r) => r.intents[name] || 0), backgroundColor: color(i),
      })),
    },
    options: {
      scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } },
      plugins: { legend: { labels: { boxWidth: 12 } },
                 title: { display: empty(intentNames), text: "无回复 No replies" } },
    },
  });

  const reasons = Object.keys(d.handoffs.by_reason);
  draw("chart-handoffs", {
    type: "bar",
    data: {
      labels: [...reasons, "SLA"],
      datasets: [
        { label: "转人工 Handoffs", data: [...reasons.map((r) => d.handoffs.by_reason[r]), null],
          backgroundColor: color(0) },
        { label: "SLA 达标 met", data: [...reasons.map(() => null), d.handoffs.sla_met],
          backgroundColor: color(1) },
        { label: "SLA 超时 missed", data: [...reasons.map(() => null), d.handoffs.sla_missed],
          backgroundColor: color(3) },
        { label: "SLA 等待 pending", data: [...reasons.map(() => null), d.handoffs.sla_pending],
          backgroundColor: color(8) },
      ],
    },
    options: {
      indexAxis: "y",
      scales: { x: { beginAtZero: true, ticks: { precision: 0 }, stacked: true }, y: { stacked: true } },
      plugins: { legend: { labels: { boxWidth: 12 } },
                 title: { display: empty(reasons), text: "无转人工 No handoffs" } },
    },
  });

  draw("chart-templates", {
    type: "bar",
    data: {
      labels: d.templates.map((t) => t.template),
      datasets: [
        { label: "回复率 Reply rate %", data: d.templates.map((t) => t.reply_rate * 100),
          backgroundColor: color(0) },
        { label: "还款率 Payment rate %", data: d.templates.map((t) => t.payment_rate * 100),
          backgroundColor: color(1) },
      ],
    },
    options: {
      indexAxis: "y",
      scales: { x: { beginAtZero: true, max: 100 } },
      plugins: { legend: { labels: { boxWidth: 12 } },
                 title: { display: empty(d.templates), text: "无发送 Nothing sent" } },
    },
  });

  const rules = [...new Set([...Object.keys(d.gate.blocked), ...Object.keys(d.gate.deferred)])];
  draw("chart-gate", {
    type: "bar",
    data: {
      labels: rules,
      datasets: [
        { label: "拦截 Blocked", data: rules.map((r) => d.gate.blocked[r] || 0), backgroundColor: color(3) },
        { label: "延后 Deferred", data: rules.map((r) => d.gate.deferred[r] || 0), backgroundColor: color(2) },
      ],
    },
    options: {
      indexAxis: "y",
      scales: { x: { beginAtZero: true, ticks: { precision: 0 } } },
      plugins: { legend: { labels: { boxWidth: 12 } },
                 title: { display: empty(rules), text: "无拦截 Nothing held" } },
    },
  });
})();
