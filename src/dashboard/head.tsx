/** A table's header row; a column named with a leading '#' holds numbers and is right-aligned. */
export function Head({ cols }: { cols: string[] }) {
  return (
    <thead>
      <tr>
        {cols.map((c) =>
          c.startsWith('#') ? (
            <th key={c} class="num">
              {c.slice(1)}
            </th>
          ) : (
            <th key={c}>{c}</th>
          ),
        )}
      </tr>
    </thead>
  );
}
