/**
 * The docker handler, under the docker executor: one container per step
 * attempt, through the Docker Engine API (dockerode: the local socket, or
 * DOCKER_HOST). The container runs `weft step`; it is labelled with the run,
 * step and attempt, what it prints goes to this process's stderr (each line
 * prefixed with the step), and it is removed once its step is over.
 *
 * Health: a container that exited without reporting fails its step with
 * its exit code, `OOMKilled` when the kernel killed it for memory, and its
 * last lines of output. Terminate: `docker stop` (SIGTERM, then SIGKILL
 * after `stopTimeoutSeconds`) unless it is finishing on its own, then
 * remove. At the end of the run, any container still labelled with the
 * run (one whose launch failed half-way) is removed too.
 */
import { constants } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Writable } from 'node:stream';
import type Docker from 'dockerode';
import { WeftError } from '../../errors.ts';
import type { StepHandler, StepHandlerContext, StepHealth } from '../delegating/handler.ts';
import type { DockerLaunchConfig } from './docker-config.ts';
import { containerConfigFor, ImageNotFoundError } from './docker-config.ts';
import { attemptResourceName, stepEnvironment } from './container-env.ts';
import { optionalPackage } from '../../util/optional.ts';

/** Labels on every step container. */
export const LABEL_RUN = 'weft.run';
export const LABEL_STEP = 'weft.step';
export const LABEL_ATTEMPT = 'weft.attempt';

const TAIL_LINES = 20;
const FINISH_WAIT_MS = 10_000;

interface StepContainer {
  container: Docker.Container;
  /** The last lines it printed, for a failure message. */
  tail: string[];
  /** Ends when its output stream does. */
  output: Promise<void>;
}

export function dockerHandler(config: DockerLaunchConfig): StepHandler {
  const containers = new Map<StepHandlerContext, StepContainer>();
  let runId = '';
  // dockerode (and its gRPC dependencies) load with the first docker run, not with weft: about 90 ms.
  let engine: Docker | null = null;
  const docker = (): Docker => {
    if (!engine) throw new WeftError('the docker handler was not prepared for the run');
    return engine;
  };

  return {
    name: 'docker',

    async prepare(run) {
      runId = run.runId;
      engine = await dockerEngine();
      const images = new Set(run.steps.map((s) => containerConfigFor(s, config).image));
      if (config.network !== 'host' && !config.coordinator.advertiseAddress && /^(127\.|localhost$|::1$)/.test(config.coordinator.host)) {
        run.log(`the run's coordinator listens on ${config.coordinator.host}, which only containers on network 'host' reach: set network: 'host', or coordinator: { host: '0.0.0.0', advertiseAddress: 'ws://ADDRESS-CONTAINERS-REACH:PORT' }`);
      }
      await Promise.all([...images].map((image) => ensureImage(docker(), image, config)));
    },

    async launch(ctx) {
      const c = containerConfigFor(ctx.step, config);
      const { args, env } = await ctx.weftStep(config.codeDir ? { module: mapModule(ctx.spec.module, config.codeDir) } : {});
      const options = c.containerOptions as Docker.ContainerCreateOptions;
      // Init: a small init (docker-init) as PID 1 passes signals on, so a step stopped while node is still starting dies at SIGTERM, not 5 s later at SIGKILL.
      const hostConfig: Docker.HostConfig = { Init: true, ...(options.HostConfig ?? {}), Binds: [...(options.HostConfig?.Binds ?? []), ...c.volumes] };
      if (config.network) hostConfig.NetworkMode = config.network;
      const name = attemptResourceName(ctx.runId, ctx.stepKey, ctx.attempt);
      const create = (): Promise<Docker.Container> =>
        docker().createContainer({
          ...options,
          name,
          Image: c.image,
          Cmd: ['weft', ...args],
          Env: stepEnvironment(env, c.env),
          Labels: { [LABEL_RUN]: ctx.runId, [LABEL_STEP]: ctx.stepKey, [LABEL_ATTEMPT]: String(ctx.attempt) },
          ...(config.codeDir ? { WorkingDir: config.codeDir } : {}),
          HostConfig: hostConfig,
          AttachStdout: true,
          AttachStderr: true,
        });
      let container: Docker.Container;
      try {
        container = await create();
      } catch (err) {
        if (statusOf(err) !== 409) throw err;
        // Left by a queue worker that died running this attempt: replaced.
        ctx.log(`replacing the container ${name} an earlier launch of this attempt left`);
        await docker().getContainer(name).remove({ force: true }).catch(ignoreGone);
        container = await create();
      }
      const tail: string[] = [];
      const stream = await container.attach({ stream: true, stdout: true, stderr: true });
      const prefix = `[${ctx.stepKey}${ctx.attempt > 0 ? ` #${ctx.attempt + 1}` : ''}] `;
      const output = new Promise<void>((resolve) => {
        stream.once('end', resolve);
        stream.once('close', resolve);
        stream.once('error', () => resolve());
      });
      docker().modem.demuxStream(stream, lines(prefix, tail), lines(prefix, tail));
      containers.set(ctx, { container, tail, output });
      for (const n of config.networks) await docker().getNetwork(n).connect({ Container: container.id });
      await container.start();
    },

    async checkHealth(ctx): Promise<StepHealth> {
      const c = containers.get(ctx);
      if (!c) return { healthy: true };
      let info: Docker.ContainerInspectInfo;
      try {
        info = await c.container.inspect();
      } catch (err) {
        if (statusOf(err) === 404) return { healthy: false, reason: `the container of step ${ctx.stepKey} (${c.container.id.slice(0, 12)}) is gone: it was removed from outside weft` };
        throw err;
      }
      if (info.State.Running || info.State.Status === 'created') return { healthy: true };
      return { healthy: false, reason: describeExit(ctx.stepKey, c, info.State) };
    },

    async terminate(ctx) {
      const c = containers.get(ctx);
      containers.delete(ctx);
      if (!c) return;
      // A finished step's container exits on its own; anything else is stopped (SIGTERM, then SIGKILL).
      if (ctx.finished) await waitFor(c.container.wait(), FINISH_WAIT_MS);
      else await c.container.stop({ t: config.stopTimeoutSeconds }).catch(ignoreGone);
      await waitFor(c.output, 2000);
      await c.container.remove({ force: true }).catch(ignoreGone);
    },

    async close() {
      if (engine) await removeRunContainers(engine, runId);
    },
  };
}

async function dockerEngine(): Promise<Docker> {
  const { default: Dockerode } = await optionalPackage(['dockerode'], 'the docker executor', () => import('dockerode'));
  return new Dockerode();
}

/** Removes every container labelled with the run (running ones are killed); resolves with how many. */
async function removeRunContainers(engine: Docker, runId: string): Promise<number> {
  const left = await engine.listContainers({ all: true, filters: { label: [`${LABEL_RUN}=${runId}`] } });
  await Promise.all(left.map((c) => engine.getContainer(c.Id).remove({ force: true }).catch(ignoreGone)));
  return left.length;
}

/** The containers of a run whose launcher died (the run monitor calls this through the docker executor). */
export async function cleanupDockerRun(runId: string): Promise<number> {
  return removeRunContainers(await dockerEngine(), runId);
}

/** The image is on the engine, or is pulled from the configured registry; otherwise the run fails naming it. */
async function ensureImage(docker: Docker, image: string, config: DockerLaunchConfig): Promise<void> {
  try {
    await docker.getImage(image).inspect();
    return;
  } catch (err) {
    if (statusOf(err) !== 404) throw new WeftError(`cannot reach the Docker engine (${process.env['DOCKER_HOST'] ?? '/var/run/docker.sock'}) to look for image ${image}: ${(err as Error).message}`);
  }
  const registry = config.registry;
  if (!registry) throw new ImageNotFoundError(`image ${image} does not exist on the Docker engine; build or pull it first, or give the executor a registry to pull it from`);
  const auth = { username: registry.username, password: registry.password, serveraddress: registry.url };
  try {
    const stream = await docker.pull(image, { authconfig: auth });
    await new Promise<void>((resolve, reject) => docker.modem.followProgress(stream, (err) => (err ? reject(err) : resolve())));
  } catch (err) {
    throw new ImageNotFoundError(`image ${image} does not exist on the Docker engine and could not be pulled from ${registry.url}: ${(err as Error).message}`);
  }
}

function describeExit(stepKey: string, c: StepContainer, state: Docker.ContainerInspectInfo['State']): string {
  const code = state.ExitCode;
  const signal = code > 128 ? Object.entries(constants.signals).find(([, n]) => n === code - 128)?.[0] : undefined;
  const how = state.OOMKilled ? ' (OOMKilled: the kernel killed it for using more memory than its limit)' : signal ? ` (killed by ${signal})` : '';
  const tail = c.tail.length > 0 ? `; its last output:\n${c.tail.join('\n')}` : '';
  return `the container of step ${stepKey} (${c.container.id.slice(0, 12)}) exited with code ${code}${how} without reporting the end of the step${tail}`;
}

/** A writable that prints each line with a prefix and keeps the last ones. */
function lines(prefix: string, tail: string[]): Writable {
  let partial = '';
  const out = (line: string): void => {
    process.stderr.write(`${prefix}${line}\n`);
    tail.push(line);
    if (tail.length > TAIL_LINES) tail.shift();
  };
  return new Writable({
    write(chunk: Buffer, _enc, done) {
      const parts = (partial + chunk.toString('utf8')).split('\n');
      partial = parts.pop() ?? '';
      for (const l of parts) out(l);
      done();
    },
    final(done) {
      if (partial) out(partial);
      done();
    },
  });
}

/** The module's path in the image: its project (nearest package.json up) is at codeDir there. */
export function mapModule(moduleUrl: string, codeDir: string): string {
  const path = fileURLToPath(moduleUrl);
  let root = dirname(path);
  while (!existsSync(join(root, 'package.json')) && dirname(root) !== root) root = dirname(root);
  if (!existsSync(join(root, 'package.json'))) root = dirname(path);
  return pathToFileURL(join(codeDir, relative(root, path))).href;
}

function statusOf(err: unknown): number | undefined {
  return (err as { statusCode?: number }).statusCode;
}

/** Already stopped (304) or removed (404): nothing to do. */
function ignoreGone(err: unknown): void {
  const s = statusOf(err);
  if (s !== 304 && s !== 404 && s !== 409) throw err;
}

async function waitFor(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([p.catch(() => {}), new Promise((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}
