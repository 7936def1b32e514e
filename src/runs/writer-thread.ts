/** The run writer's thread (writer.ts): its own connection to run storage, and the output store's files. */
import { parentPort, workerData } from 'node:worker_threads';
import { serializeError } from '../errors.ts';
import { FsOutputStore, OutputStoreError } from '../jobs/outputs.ts';
import { RunStorageError } from './errors.ts';
import { inOrder } from './recorder.ts';
import { openStorageAt } from './sql/open.ts';
import { readEventFrames } from './event-frames.ts';
import type { WriterInit, WriterReply, WriterRequest } from './writer.ts';

const init = workerData as WriterInit;
const port = parentPort;
if (!port) throw new Error('the run writer runs in a worker thread');
const store = new FsOutputStore(init.outputRoot);
// This thread writes nearly all that the process writes, so it checkpoints SQLite's log (when idle), and the launcher's own connection never does (instance.ts).
let opened = openStorageAt(init.storage, 'when-idle');
/** The storage, opened again after opening failed (the database was down): each write retries it. */
function storage(): ReturnType<typeof openStorageAt> {
  opened = opened.catch(() => openStorageAt(init.storage, 'when-idle'));
  return opened;
}
opened.catch(() => undefined);
/** Each run's batches in the order they came, retried while storage is down (for up to 30 s each). */
const append = inOrder<Uint8Array>(async (runId, frames) => (await storage()).appendColumns(runId, readEventFrames(frames)), { giveUpMs: 30_000 });

function fail(id: number, err: unknown): WriterReply {
  const kind = err instanceof OutputStoreError ? 'output' : err instanceof RunStorageError ? 'storage' : undefined;
  return { id, error: { ...serializeError(err), ...(kind ? { kind } : {}) } };
}

port.on('message', (m: WriterRequest) => {
  if (m.t === 'outputs') {
    const failed: [number, string][] = [];
    m.items.forEach((item, i) => {
      try {
        store.putSync(item.ref, item.bytes);
      } catch (err) {
        failed.push([i, (err as Error).message]);
      }
    });
    port.postMessage({ id: m.id, ...(failed.length > 0 ? { failed } : {}) } satisfies WriterReply);
    return;
  }
  void (async () => {
    try {
      if (m.t === 'events') port.postMessage({ id: m.id, status: await append(m.runId, m.frames) } satisfies WriterReply);
      else {
        await (await storage()).close();
        port.postMessage({ id: m.id } satisfies WriterReply);
      }
    } catch (err) {
      port.postMessage(fail(m.id, err));
    }
  })();
});
