import { useState } from "preact/hooks";
import { get, type Dataset, type DatasetItem, type Paged } from "../api";
import { Json } from "../components/Json";
import { Status } from "../components/Status";
import { message, useLoad } from "../hooks";
import { href, type Route } from "../route";

const PAGE = 50;

export function Datasets({ project, route }: { project: string; route: Route }) {
  const list = useLoad(() => get<Paged<Dataset>>(`/v1/projects/${project}/datasets`, { limit: 100 }), [project]);
  const name = route.path[1] ?? null;
  return (
    <section class="split">
      <div class="panel list">
        <h2>Datasets</h2>
        {!list.data ? (
          <Status state={list} />
        ) : list.data.data.length === 0 ? (
          <p class="muted">No datasets yet.</p>
        ) : (
          <ul class="nav-list">
            {list.data.data.map((d) => (
              <li key={d.id} class={d.name === name ? "active" : ""}>
                <a href={href(`/datasets/${encodeURIComponent(d.name)}`)}>{d.name}</a>
                {d.description && <div class="muted">{d.description}</div>}
              </li>
            ))}
          </ul>
        )}
      </div>
      <div class="grow">{name ? <Items key={name} project={project} name={name} /> : <div class="empty">Choose a dataset.</div>}</div>
    </section>
  );
}

function Items({ project, name }: { project: string; name: string }) {
  const path = `/v1/projects/${project}/datasets/${encodeURIComponent(name)}/items`;
  const first = useLoad(() => get<Paged<DatasetItem>>(path, { limit: PAGE, page: 1 }), [path]);
  const [more, setMore] = useState<DatasetItem[]>([]);
  const [page, setPage] = useState(1);
  const [error, setError] = useState<string | null>(null);
  if (!first.data) return <Status state={first} />;
  const items = [...first.data.data, ...more];
  const total = first.data.meta?.totalItems ?? items.length;
  const loadMore = async () => {
    try {
      const next = await get<Paged<DatasetItem>>(path, { limit: PAGE, page: page + 1 });
      setMore((previous) => [...previous, ...next.data]);
      setPage(page + 1);
    } catch (e) {
      setError(message(e));
    }
  };
  return (
    <div class="panel">
      <h1>{name}</h1>
      <p class="muted">{total} items</p>
      <table class="grid compact" aria-label="Dataset items">
        <thead>
          <tr>
            <th>Item</th>
            <th>Input</th>
            <th>Expected output</th>
            <th>Status</th>
          </tr>
        </thead>
        <tbody>
          {items.map((item) => (
            <tr key={item.id}>
              <td class="mono">{item.id.slice(0, 12)}</td>
              <td><Json value={item.input} depth={0} /></td>
              <td><Json value={item.expected_output} depth={0} /></td>
              <td>{item.status}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {error && <div class="error" role="alert">{error}</div>}
      {items.length < total && (
        <button type="button" class="secondary more" onClick={() => void loadMore()}>
          Load more
        </button>
      )}
    </div>
  );
}
