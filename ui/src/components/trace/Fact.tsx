/** One labelled fact in a `<dl class="facts">`. */
export function Fact({ label, value }: { label: string; value: preact.ComponentChildren }) {
  return (
    <div>
      <dt>{label}</dt>
      <dd>{value}</dd>
    </div>
  );
}
