// The inbox console's only script: progressive enhancement. Every action is a plain form POST
// that works without it; with it, an action asks for confirmation first.
"use strict";

const QUESTIONS = {
  "replay-filtered": "Replay every done and dead delivery matching these filters?",
  "requeue-dead": "Make every dead letter pending again?",
  "replay-one": "Replay this delivery?",
};

document.addEventListener("submit", (event) => {
  const question = QUESTIONS[event.target.id];
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});
