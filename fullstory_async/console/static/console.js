// The inbox console's only script: progressive enhancement. Every action works as a plain form
// POST without it; with it, a replay asks first and shows its result in place.
"use strict";

function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.content : "";
}

function statusRegion(form) {
  let region = document.getElementById("result");
  if (!region) {
    region = document.createElement("p");
    region.id = "result";
    region.setAttribute("role", "status");
    form.parentNode.insertBefore(region, form.nextSibling);
  }
  return region;
}

const QUESTIONS = {
  "replay-filtered": "Replay every done and dead delivery matching these filters?",
  "requeue-dead": "Make every dead letter pending again?",
  "replay-one": "Replay this delivery?",
};

document.addEventListener("submit", (event) => {
  const form = event.target;
  const question = QUESTIONS[form.id];
  if (question && !window.confirm(question)) {
    event.preventDefault();
    return;
  }
  if (form.id !== "replay-one") {
    return; // the filtered replays may need a confirmation page: let the server answer with a page
  }
  event.preventDefault();
  const region = statusRegion(form);
  region.textContent = "Replaying…";
  fetch(form.action, {
    method: "POST",
    body: new URLSearchParams(new FormData(form)),
    headers: { "X-CSRF-Token": csrfToken() },
    credentials: "same-origin",
  })
    .then((response) => response.text().then((text) => ({ response, text })))
    .then(({ response, text }) => {
      const page = new DOMParser().parseFromString(text, "text/html");
      const answer = page.getElementById("result") || page.getElementById("error");
      region.textContent = answer ? answer.textContent : `HTTP ${response.status}`;
    })
    .catch(() => {
      form.submit(); // the plain form POST
    });
});
