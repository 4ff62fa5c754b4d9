// Alerting pages: acknowledge, send test, expire silence, create silence, and the rule editor's backtest preview.
(function () {
  "use strict";

  function csrfToken() {
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  async function api(method, url, body) {
    const response = await fetch(url, {
      method: method,
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    const data = text ? JSON.parse(text) : null;
    if (!response.ok) {
      throw new Error((data && data.detail) || response.status + " " + response.statusText);
    }
    return data;
  }

  function status(message, element) {
    const target = element || document.getElementById("alerts-status") || document.getElementById("editor-status");
    if (target) target.textContent = message;
  }

  document.addEventListener("click", async function (event) {
    const button = event.target.closest("button[data-acknowledge], button[data-send-test], button[data-expire]");
    if (!button) return;
    button.disabled = true;
    try {
      if (button.dataset.acknowledge) {
        await api("POST", "/api/v1/alerts/" + button.dataset.acknowledge + "/acknowledge");
        status("Acknowledged.");
        button.remove();
      } else if (button.dataset.sendTest) {
        const notification = await api("POST", "/api/v1/contact-points/" + button.dataset.sendTest + "/test");
        const attempt = notification.delivery_attempts[notification.delivery_attempts.length - 1];
        status(notification.state === "sent" ? "Test sent." : "Test not delivered: " + (attempt ? attempt.error : notification.last_error));
      } else if (button.dataset.expire) {
        await api("DELETE", "/api/v1/silences/" + button.dataset.expire + "/");
        status("Silence expired.");
      }
    } catch (error) {
      status(error.message);
    } finally {
      button.disabled = false;
    }
  });

  const silenceForm = document.getElementById("silence-form");
  if (silenceForm) {
    silenceForm.addEventListener("submit", async function (event) {
      event.preventDefault();
      try {
        const matchers = JSON.parse(document.getElementById("silence-matchers").value);
        const ends = new Date(document.getElementById("silence-ends").value).toISOString();
        await api("POST", "/api/v1/silences/", { matchers: matchers, ends_at: ends, comment: document.getElementById("silence-comment").value });
        window.location.reload();
      } catch (error) {
        status(error.message);
      }
    });
  }

  const editor = document.getElementById("rule-editor");
  if (!editor) return;
  const ruleId = editor.dataset.ruleId;
  const editorStatus = document.getElementById("editor-status");

  function documentBody() {
    try {
      return JSON.parse(document.getElementById("rule-document").value);
    } catch (error) {
      throw new Error("The rule is not valid JSON: " + error.message);
    }
  }

  const SVG = "http://www.w3.org/2000/svg";

  function chart(group) {
    // One line of values over the range, with the steps where the rule would fire shaded.
    const width = 900, height = 140, pad = 4;
    const points = group.timeline.filter(function (step) { return step[1] !== null; });
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", "0 0 " + width + " " + height);
    svg.setAttribute("class", "backtest-chart");
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", "Values and firing periods of " + JSON.stringify(group.labels));
    const count = group.timeline.length || 1;
    const values = points.map(function (step) { return step[1]; });
    const low = Math.min.apply(null, values), high = Math.max.apply(null, values);
    const x = function (index) { return pad + (index / Math.max(count - 1, 1)) * (width - 2 * pad); };
    const y = function (value) { return high === low ? height / 2 : height - pad - ((value - low) / (high - low)) * (height - 2 * pad); };
    group.timeline.forEach(function (step, index) {
      if (step[2] === "firing" || step[2] === "recovering" || step[2] === "pending") {
        const band = document.createElementNS(SVG, "rect");
        band.setAttribute("x", x(index));
        band.setAttribute("y", 0);
        band.setAttribute("width", Math.max(width / count, 1));
        band.setAttribute("height", height);
        band.setAttribute("class", "band-" + step[2]);
        svg.appendChild(band);
      }
    });
    let path = "";
    group.timeline.forEach(function (step, index) {
      if (step[1] === null) return;
      path += (path ? "L" : "M") + x(index).toFixed(1) + "," + y(step[1]).toFixed(1);
    });
    const line = document.createElementNS(SVG, "path");
    line.setAttribute("d", path);
    line.setAttribute("class", "line");
    svg.appendChild(line);
    return svg;
  }

  document.getElementById("backtest-run").addEventListener("click", async function () {
    editorStatus.textContent = "Running the backtest…";
    try {
      const range = document.getElementById("backtest-range").value;
      const result = await api("POST", "/api/v1/alert-rules/backtest?start=" + encodeURIComponent(range), documentBody());
      document.getElementById("backtest").hidden = false;
      document.getElementById("backtest-summary").textContent =
        "Over this range the rule would have fired " + result.firings + " time(s) and sent " + result.notifications +
        " notification(s), across " + result.groups.length + " label set(s) (one evaluation every " + result.step + ").";
      const charts = document.getElementById("backtest-charts");
      charts.replaceChildren();
      result.groups.slice(0, 12).forEach(function (group) {
        const figure = document.createElement("figure");
        const caption = document.createElement("figcaption");
        caption.textContent = JSON.stringify(group.labels) + ": " + group.transitions.length + " state change(s)";
        figure.appendChild(caption);
        figure.appendChild(chart(group));
        charts.appendChild(figure);
      });
      editorStatus.textContent = "";
    } catch (error) {
      editorStatus.textContent = error.message;
    }
  });

  document.getElementById("rule-save").addEventListener("click", async function () {
    try {
      const body = documentBody();
      const rule = ruleId
        ? await api("PATCH", "/api/v1/alert-rules/" + ruleId + "/", body)
        : await api("POST", "/api/v1/alert-rules/", body);
      window.location.href = "/alerts/rules/" + rule.id;
    } catch (error) {
      editorStatus.textContent = error.message;
    }
  });
})();
