// Alerting pages' row buttons: acknowledge an instance, send a test to a contact point, expire a silence.
// The forms are objects.js and rule-editor.js.
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
        window.location.reload();
      }
    } catch (error) {
      status(error.message);
    } finally {
      button.disabled = false;
    }
  });
})();
