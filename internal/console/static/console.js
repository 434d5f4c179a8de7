// Charts: every element with data-chart="<url>" is drawn with uPlot from
// JSON {t: [unix seconds], series: [{name, values}]}, and redrawn every
// 10 s. data-points tells how many points the chart holds.
(function () {
  "use strict";
  const colors = ["#2e5aac", "#fca311", "#127a3a", "#b42318"];
  async function draw(el) {
    let d;
    try {
      const r = await fetch(el.dataset.chart, { cache: "no-store" });
      d = await r.json();
    } catch (e) {
      return;
    }
    el.dataset.points = String(d.t.length);
    if (d.t.length < 2) {
      el.innerHTML = '<div class="nodata">Collecting samples… (' + d.t.length + ' so far)</div>';
      el._plot = null;
      return;
    }
    const data = [d.t].concat(d.series.map(s => s.values));
    if (el._plot) {
      el._plot.setData(data);
      return;
    }
    el.innerHTML = "";
    const opts = {
      width: Math.max(el.clientWidth - 16, 300),
      height: Number(el.dataset.height || 180),
      scales: { x: { time: true } },
      series: [{}].concat(d.series.map((s, i) => ({
        label: s.name, stroke: colors[i % colors.length], width: 2, fill: colors[i % colors.length] + "22",
      }))),
      axes: [{}, { size: 60 }],
    };
    el._plot = new uPlot(opts, data, el);
  }
  function all() { document.querySelectorAll("[data-chart]").forEach(draw); }
  document.addEventListener("DOMContentLoaded", function () {
    all();
    setInterval(all, 10000);
  });
})();
