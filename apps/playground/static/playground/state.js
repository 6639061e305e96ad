// What the panes share: the assistant being edited, the thread and run on screen.
export const state = {
  assistant: null, // the saved assistant (an API object), or null while a new one is drafted
  thread: null,
  runs: [],
  run: null,
  seen: new Map(), // run id -> [[status, Date]] as this page saw them stream
};

const bus = new EventTarget();
export const on = (name, handler) => bus.addEventListener(name, (event) => handler(event.detail));
export const emit = (name, detail) => bus.dispatchEvent(new CustomEvent(name, { detail }));

export function noteStatus(run) {
  const seen = state.seen.get(run.id) || [];
  if (!seen.length || seen[seen.length - 1][0] !== run.status) seen.push([run.status, new Date()]);
  state.seen.set(run.id, seen);
}
