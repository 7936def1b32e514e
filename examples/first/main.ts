// main.ts: a client of the cluster at ws://127.0.0.1:8786.
import { Client, ref } from 'weftjs';

const client = await Client.connect('ws://127.0.0.1:8786');

// A module function: the workers import ./tasks.ts (relative to their working directory).
const x = client.submit('./tasks.ts#inc', 1);
// A self-contained inline function, shipped as source. Futures become values.
const y = client.submit((a: number, b: number) => a * b, x, 10);
console.log(await y); // 20

// Many tasks at once, then their results, fetched from the workers.
const squares = client.map((n: number) => n * n, [1, 2, 3]);
console.log(await client.gather(squares)); // [ 1, 4, 9 ]

// A whole graph in one message: ref('a') is task a's result, wherever it sits.
const graph = {
  a: { fn: './tasks.ts#load', args: ['part-1'] },
  b: { fn: './tasks.ts#load', args: ['part-22'] },
  total: { fn: './tasks.ts#merge', args: [{ left: ref('a'), right: ref('b') }], retries: 2 },
};
console.log(await client.get(graph, 'total')); // 532

await client.close();
