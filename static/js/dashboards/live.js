// The live connection: one WebSocket to /ws/live/ per page, panel subscriptions, pings for the
// connection indicator, and reconnection with backoff that resumes each subscription from its last point.

const PING_EVERY_MS = 15000;
const PONG_TIMEOUT_MS = 10000;
const BACKOFF_MS = [500, 1000, 2000, 5000, 10000, 30000];

export class LiveConnection {
  constructor({ url = defaultUrl(), onState = () => {} } = {}) {
    this.url = url;
    this.onState = onState;
    this.subscriptions = new Map(); // id -> {query, since, onData, onError}
    this.socket = null;
    this.attempt = 0;
    this.closed = false;
    this.state = "idle";
    this.pingTimer = null;
    this.pongTimer = null;
    this.reconnectTimer = null;
  }

  setState(state, detail = "") {
    this.state = state;
    this.onState(state, detail);
  }

  open() {
    this.closed = false;
    if (this.socket && this.socket.readyState <= WebSocket.OPEN) return;
    this.setState("connecting");
    let socket;
    try {
      socket = new WebSocket(this.url);
    } catch (error) {
      this.scheduleReconnect(String(error));
      return;
    }
    this.socket = socket;
    socket.addEventListener("open", () => {
      this.attempt = 0;
      this.setState("open");
      for (const [id, subscription] of this.subscriptions) this.sendSubscribe(id, subscription);
      this.startPings();
    });
    socket.addEventListener("message", (event) => this.receive(event.data));
    socket.addEventListener("close", (event) => {
      this.stopPings();
      if (this.socket === socket) this.socket = null;
      if (this.closed) {
        this.setState("idle");
        return;
      }
      const reason = event.code === 4401 || (event.code === 1006 && this.attempt > 3) ? "sign in again if this persists" : "";
      this.scheduleReconnect(reason);
    });
  }

  close() {
    this.closed = true;
    clearTimeout(this.reconnectTimer);
    this.stopPings();
    if (this.socket) this.socket.close(1000);
    this.socket = null;
    this.setState("idle");
  }

  scheduleReconnect(detail) {
    clearTimeout(this.reconnectTimer);
    const base = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
    const delay = base + Math.round(Math.random() * base * 0.3);
    this.attempt += 1;
    this.setState("reconnecting", detail || `retrying in ${Math.round(delay / 1000) || 1} s`);
    this.reconnectTimer = setTimeout(() => this.open(), delay);
  }

  startPings() {
    this.stopPings();
    this.pingTimer = setInterval(() => {
      if (!this.socket || this.socket.readyState !== WebSocket.OPEN) return;
      this.send({ type: "ping", id: `ping-${Date.now()}` });
      clearTimeout(this.pongTimer);
      this.pongTimer = setTimeout(() => {
        this.setState("stale", "no answer to the last ping");
        this.socket?.close(4000);
      }, PONG_TIMEOUT_MS);
    }, PING_EVERY_MS);
  }

  stopPings() {
    clearInterval(this.pingTimer);
    clearTimeout(this.pongTimer);
  }

  send(message) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) {
      this.socket.send(JSON.stringify(message));
      return true;
    }
    return false;
  }

  sendSubscribe(id, subscription) {
    const message = { type: "subscribe", id, query: subscription.query };
    if (subscription.since) message.since = subscription.since;
    this.send(message);
  }

  // onData(series, {initial}) receives deltas; the subscription remembers the last point time for resuming.
  subscribe(id, query, { since = null, onData, onError = () => {} }) {
    const subscription = { query, since, onData, onError };
    this.subscriptions.set(id, subscription);
    this.sendSubscribe(id, subscription);
    if (!this.socket && !this.closed) this.open();
  }

  unsubscribe(id) {
    if (this.subscriptions.delete(id)) this.send({ type: "unsubscribe", id });
  }

  unsubscribeAll() {
    for (const id of [...this.subscriptions.keys()]) this.unsubscribe(id);
  }

  receive(text) {
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      return;
    }
    if (message.type === "pong") {
      clearTimeout(this.pongTimer);
      if (this.state !== "open") this.setState("open");
      return;
    }
    const subscription = message.id ? this.subscriptions.get(message.id) : null;
    if (message.type === "data" && subscription) {
      for (const item of message.series ?? []) {
        const last = item.points?.[item.points.length - 1];
        if (last && (!subscription.since || Date.parse(last[0]) > Date.parse(subscription.since))) {
          subscription.since = last[0];
        }
      }
      subscription.onData(message.series ?? [], { initial: Boolean(message.initial) });
    } else if (message.type === "error") {
      if (subscription) subscription.onError(message.message ?? "Live update failed.");
      else if (!message.id) this.onState(this.state, message.message ?? "");
    }
  }
}

function defaultUrl() {
  const scheme = window.location.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${window.location.host}/ws/live/`;
}
