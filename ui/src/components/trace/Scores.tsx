import type { Score } from "../../api";
import { scoreValue } from "./tree";

/** Scores as a table; with `onSelect`, each links to the observation it scores. */
export function ScoreList({ scores, onSelect }: { scores: Score[]; onSelect?: (id: string) => void }) {
  return (
    <table class="grid compact" aria-label="Scores">
      <thead>
        <tr>
          <th>Score</th>
          <th>Value</th>
          <th>Source</th>
          <th>Comment</th>
          {onSelect && <th>Observation</th>}
        </tr>
      </thead>
      <tbody>
        {scores.map((s) => {
          const value = scoreValue(s);
          return (
            <tr key={s.id}>
              <td>{s.name}</td>
              <td class={value.className}>{value.text}</td>
              <td>{s.source}</td>
              <td>{s.comment ?? ""}</td>
              {onSelect && (
                <td>
                  {s.observation_id && (
                    <button type="button" class="link" onClick={() => onSelect(s.observation_id as string)}>
                      {s.observation_id.slice(0, 8)}
                    </button>
                  )}
                </td>
              )}
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}
