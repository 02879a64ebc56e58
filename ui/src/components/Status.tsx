import type { Loaded } from "../hooks";

/** Loading and error states, the same everywhere. */
export function Status<T>({ state }: { state: Loaded<T> }) {
  if (state.error) return <div class="error" role="alert">{state.error}</div>;
  if (state.loading && state.data === null) return <div class="muted loading">Loading…</div>;
  return null;
}

/** A failed request's message, with a button that asks again. */
export function Failure({ error, onRetry }: { error: string; onRetry: () => void }) {
  return (
    <div class="error" role="alert">
      {error}{" "}
      <button type="button" class="link retry" onClick={onRetry}>
        Retry
      </button>
    </div>
  );
}
