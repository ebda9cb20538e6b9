// SPDX-License-Identifier: MIT
// Refreshing by itself: run(fn) now, then again `intervalMs` after each run
// ends (never two at once), paused while the tab is hidden and resumed at
// once when it shows again.

export function poller(fn, intervalMs) {
  let timer = null;
  let stopped = false;
  let running = false;

  const schedule = () => {
    if (stopped || document.hidden) return;
    clearTimeout(timer);
    timer = setTimeout(tick, intervalMs);
  };
  async function tick() {
    if (stopped || running) return;
    running = true;
    try {
      await fn();
    } finally {
      running = false;
      schedule();
    }
  }
  const onVisibility = () => {
    if (!document.hidden && !running) {
      clearTimeout(timer);
      tick();
    }
  };
  document.addEventListener('visibilitychange', onVisibility);
  tick();
  return {
    // Runs now (e.g. after an action) instead of waiting.
    now() {
      if (!running) {
        clearTimeout(timer);
        tick();
      }
    },
    stop() {
      stopped = true;
      clearTimeout(timer);
      document.removeEventListener('visibilitychange', onVisibility);
    },
  };
}
