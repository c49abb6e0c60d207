// The playground: sends the query to this server's /v1/chat/completions with stream: true and shows each
// step's event as it arrives. Every text is set with textContent, so what a model or a user wrote is shown
// as text, never as markup.
"use strict";

const $ = (id) => document.getElementById(id);
const session = [];  // this page's earlier runs: {query, goal, model, events, response, principles}

function headers() {
  const h = {"Content-Type": "application/json"};
  const key = $("key").value || sessionStorage.getItem("spri-key") || "";
  if (key) { h["Authorization"] = "Bearer " + key; sessionStorage.setItem("spri-key", key); }
  return h;
}

async function loadModels() {
  const reply = await fetch("/v1/models", {headers: headers()});
  if (!reply.ok) { $("status").textContent = "models: " + reply.status + " (API key?)"; return; }
  const listing = await reply.json();
  const select = $("model");
  select.replaceChildren();
  for (const model of listing.data.filter((m) => m.kind === "response")) {
    const option = document.createElement("option");
    option.value = model.id;
    option.textContent = model.id + (model.description ? " — " + model.description : "");
    select.append(option);
  }
}

function describe(event) {
  const out = event.outputs || {};
  if (event.kind === "critic") {
    return {title: `${event.stage} critique, round ${event.round}`, score: out.score, text: out.feedback || ""};
  }
  const text = out.principles ?? out.response ?? out.rubric ?? out.feedback ?? JSON.stringify(out);
  const verb = event.kind === "refiner" ? "refined" : "written";
  return {title: `${event.stage} ${verb}` + (event.kind === "refiner" ? `, round ${event.round}` : ""), text: String(text)};
}

function showEvent(event) {
  const item = document.createElement("li");
  item.className = event.kind || "";
  item.dataset.stage = event.stage || "";
  item.dataset.kind = event.kind || "";
  const shown = describe(event);
  const meta = document.createElement("span");
  meta.className = "meta";
  meta.textContent = shown.title;
  item.append(meta);
  if (shown.score !== undefined) {
    const score = document.createElement("span");
    score.className = "score";
    score.textContent = `score ${shown.score}/5 `;
    item.append(score);
  }
  const body = document.createElement("span");
  body.className = "text";
  body.textContent = shown.text;
  item.append(body);
  $("rounds-list").append(item);
  if (event.stage === "principles" && event.kind !== "critic") $("principles").textContent = shown.text;
}

function showRun(run) {
  $("rounds-list").replaceChildren();
  run.events.forEach(showEvent);
  $("principles").textContent = run.principles || "";
  $("response").textContent = run.response || "";
  $("usage").textContent = run.usage ? `${run.usage.lm_calls} LM calls, ${run.usage.total_tokens} tokens` : "";
}

function remember(run) {
  session.push(run);
  const item = document.createElement("li");
  item.textContent = run.query.length > 80 ? run.query.slice(0, 80) + "…" : run.query;
  item.title = run.model;
  item.addEventListener("click", () => showRun(run));
  $("history").append(item);
}

async function send(event) {
  event.preventDefault();
  const run = {query: $("query").value, goal: $("goal").value, model: $("model").value, events: [],
               response: "", principles: "", usage: null};
  const body = {model: run.model, messages: [{role: "user", content: run.query}], stream: true,
                stream_options: {include_usage: true}};
  if (run.goal) body.goal = run.goal;
  if ($("threshold").value) body.threshold = Number($("threshold").value);
  if ($("rounds").value) body.max_rounds = Number($("rounds").value);
  showRun(run);
  $("send").disabled = true;
  $("status").className = "";
  $("status").textContent = "running…";
  try {
    const reply = await fetch("/v1/chat/completions", {method: "POST", headers: headers(), body: JSON.stringify(body)});
    if (!reply.ok) {
      const problem = await reply.json().catch(() => ({error: {message: reply.statusText}}));
      throw new Error(`${reply.status}: ${problem.error.message}`);
    }
    const reader = reply.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const {value, done} = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, {stream: true});
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const line = buffer.slice(0, cut).trim();
        buffer = buffer.slice(cut + 2);
        if (!line.startsWith("data: ") || line === "data: [DONE]") continue;
        const data = JSON.parse(line.slice(6));
        if (data.error) throw new Error(data.error.message);
        if (data.usage) run.usage = data.usage;
        const delta = (data.choices && data.choices[0] && data.choices[0].delta) || {};
        if (delta.content) { run.response += delta.content; $("response").textContent = run.response; }
        if (data.spri && data.spri.event === "step") { run.events.push(data.spri); showEvent(data.spri); }
        if (data.spri && data.spri.event === "done") {
          run.principles = data.spri.principles || "";
          $("principles").textContent = run.principles;
        }
      }
    }
    $("usage").textContent = run.usage ? `${run.usage.lm_calls} LM calls, ${run.usage.total_tokens} tokens` : "";
    $("status").textContent = "done";
    remember(run);
  } catch (error) {
    $("status").className = "error";
    $("status").textContent = String(error.message || error);
  } finally {
    $("send").disabled = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("form").addEventListener("submit", send);
  $("key").addEventListener("change", loadModels);
  loadModels();
});
