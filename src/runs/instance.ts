/**
 * An instance: where a team's runs are kept. WEFT_HOME (default ~/.weft)
 * holds weft.yaml (config.ts), the run storage (runs.db, SQLite, unless
 * weft.yaml names a PostgreSQL database) and the output store (storage/).
 * Every run launched with an instance is recorded there, on every executor.
 */
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { ConfigError } from '../errors.ts';
import type { OutputStore } from '../jobs/outputs.ts';
import { configIssues } from '../util/config-issues.ts';
import { DEFAULT_CONFIG, instanceConfigSchema, type InstanceConfig } from './config.ts';
import { openStorageAt, type StorageLocation } from './sql/open.ts';
import { RunWriter, WrittenOutputStore } from './writer.ts';
import type { RunStorage } from './storage.ts';
import type { RecordedRun, RunRecorder, RunStart } from '../jobs/recording.ts';
import type * as RecorderModule from './recorder.ts';

export const CONFIG_FILE = 'weft.yaml';

/** WEFT_HOME, or ~/.weft. */
export function weftHome(env: NodeJS.ProcessEnv = process.env): string {
  const h = env['WEFT_HOME'];
  return h && h.trim() !== '' ? resolve(h) : join(homedir(), '.weft');
}

export interface InstanceOptions {
  /** Default: weftHome(). */
  home?: string;
  /** Config instead of (or, when weft.yaml is absent, as) the file's. */
  config?: unknown;
}

export class Instance implements RunRecorder {
  readonly outputStore: OutputStore;
  private readonly writer: RunWriter;
  /** The recorder's module, loaded with the first run recorded. */
  private recorder: Promise<typeof RecorderModule> | null = null;

  private constructor(
    readonly home: string,
    readonly config: InstanceConfig,
    readonly storage: RunStorage,
    where: StorageLocation,
    outputRoot: string,
  ) {
    this.writer = new RunWriter({ storage: where, outputRoot });
    this.outputStore = new WrittenOutputStore(outputRoot, this.writer);
  }

  /** Opens the instance at `home`: reads weft.yaml, opens (and if need be creates or migrates) its run storage. */
  static async open(opts: InstanceOptions = {}): Promise<Instance> {
    const home = resolve(opts.home ?? weftHome());
    const config = opts.config !== undefined ? parseConfig(opts.config, 'the instance config') : await readConfig(home);
    const at = (p: string): string => (isAbsolute(p) ? p : join(home, p));
    const where: StorageLocation = config.runStorage.postgres ? { postgres: config.runStorage.postgres.url } : { sqlite: at(config.runStorage.sqlite?.path ?? 'runs.db') };
    return new Instance(home, config, await openStorageAt(where, 'elsewhere'), where, at(config.outputStore.fs.root));
  }

  /** Records a run that starts now (executeJob calls this when given the instance). */
  async startRun(run: RunStart, cancel: (reason: string) => void): Promise<RecordedRun> {
    // Loaded with the first run recorded, not by commands that only read runs; once, not per run (an import() of a loaded module still costs a trip through the loader's hooks).
    const { startRecording } = await (this.recorder ??= import('./recorder.ts'));
    return startRecording(run, cancel, { storage: this.storage, batches: (id) => this.writer.eventBatch(id), heartbeatMs: this.config.runMonitor.heartbeatInterval, claimed: this.claimed.delete(run.runId) });
  }

  /** About to launch runs: the run writer's thread and the recorder start loading now, beside the job's own loading. */
  prepareToLaunch(): void {
    this.writer.start();
    this.recorder ??= import('./recorder.ts');
  }

  /** Runs the daemon claimed from the queue: their launch takes over the stored run. */
  readonly claimed = new Set<string>();

  /** Waits for what the run writer has to write, then closes run storage. */
  async close(): Promise<void> {
    await this.writer.close();
    await this.storage.close();
  }
}

async function readConfig(home: string): Promise<InstanceConfig> {
  const file = join(home, CONFIG_FILE);
  if (!existsSync(file)) return structuredClone(DEFAULT_CONFIG) as unknown as InstanceConfig;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read ${file}: ${(err as Error).message}`);
  }
  return parseConfig(await parseYaml(text, file), file);
}

/** YAML is loaded here only: the runtime alone never loads it. */
async function parseYaml(text: string, file: string): Promise<unknown> {
  const YAML = await import('yaml');
  const doc = YAML.parseDocument(text, { prettyErrors: true });
  const first = doc.errors[0];
  if (first) throw new ConfigError(`${file} is not valid YAML: ${first.message}`);
  return doc.toJS() ?? undefined;
}

function parseConfig(raw: unknown, where: string): InstanceConfig {
  const schema = instanceConfigSchema();
  const r = schema.safeParse(raw);
  if (r.success) return r.data;
  const issues = configIssues(schema, r.error, '');
  throw new ConfigError(`${where} is not a valid instance config: ${issues.map((i) => `${i.path || '(top)'}: ${i.message}`).join('; ')}`);
}
