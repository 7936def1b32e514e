/**
 * A fake Kubernetes API server for the k8s Job executor's tests: no API
 * server can run on these machines. It implements the calls weft makes, with
 * the real API's paths, shapes and status codes:
 *
 *   batch/v1 Jobs (namespaced): create, read, list (labelSelector), delete
 *   v1 Pods (namespaced): list (labelSelector), read, delete, log (tailLines)
 *
 * and, like a kubelet, runs each Job's pod as a local process that really
 * executes its command (`weft` is this checkout's bin, the "image"'s weft),
 * with the container's env and envFrom (ConfigMaps and Secrets it holds).
 * Pods move Pending -> Running -> Succeeded/Failed; Job status counts and
 * conditions follow (backoffLimit 0: one pod). An image it does not hold
 * leaves the pod waiting in ErrImagePull; a missing ConfigMap or Secret in
 * CreateContainerConfigError; a process over its memory limit is killed and
 * its container terminated with reason OOMKilled (as the kernel would).
 * Deleting a Job stops its pods (SIGTERM, SIGKILL after the grace period).
 * It serves TLS with a certificate of its own, whose CA the kubeconfig it
 * writes carries, and requests need that kubeconfig's bearer token.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';

type Obj = Record<string, unknown>;

export interface FakePod {
  object: Obj;
  proc: ChildProcess | null;
  log: string;
  oomKilled: boolean;
}

export interface FakeK8s {
  url: string;
  /** A kubeconfig file pointing at this server, with its token. */
  kubeconfig: string;
  jobs: Map<string, Obj>;
  pods: Map<string, FakePod>;
  configMaps: Map<string, Record<string, string>>;
  secrets: Map<string, Record<string, string>>;
  /** Images that "exist": any other leaves its pod in ErrImagePull. */
  images: Set<string>;
  /** Every request, as METHOD path. */
  requests: string[];
  /** Pods whose process still runs. */
  livePods(): FakePod[];
  /** A request as kubectl would make it (TLS with the server's CA, the kubeconfig's token); the status and JSON body. */
  request(method: string, path: string): Promise<{ status: number; body: Obj }>;
  close(): Promise<void>;
}

const DNS_1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

export async function startFakeK8s(opts: { images: string[]; weftBin: string; dir: string }): Promise<FakeK8s> {
  const token = randomBytes(16).toString('hex');
  const fake: Omit<FakeK8s, 'url' | 'kubeconfig' | 'close' | 'request'> = {
    jobs: new Map(),
    pods: new Map(),
    configMaps: new Map(),
    secrets: new Map(),
    images: new Set(opts.images),
    requests: [],
    livePods: () => [...fake.pods.values()].filter((p) => p.proc !== null && p.proc.exitCode === null && p.proc.signalCode === null),
  };
  const timers = new Set<NodeJS.Timeout>();

  const status = (res: ServerResponse, code: number, reason: string, message: string, extra: Obj = {}): void => {
    send(res, code, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code, ...extra });
  };

  const podsOf = (ns: string, job: string): FakePod[] => [...fake.pods.values()].filter((p) => meta(p.object)['namespace'] === ns && labels(p.object)['job-name'] === job);

  /** The Job's status from its pod's. */
  const refreshJob = (ns: string, name: string): void => {
    const job = fake.jobs.get(`${ns}/${name}`);
    if (!job) return;
    const pod = podsOf(ns, name)[0];
    const phase = pod ? (pod.object['status'] as Obj)['phase'] : 'Pending';
    const st = job['status'] as Obj;
    const now = new Date().toISOString();
    if (phase === 'Running' || phase === 'Pending') st['active'] = 1;
    if (phase === 'Succeeded') Object.assign(st, { active: 0, succeeded: 1, completionTime: now, conditions: [{ type: 'Complete', status: 'True', lastTransitionTime: now }] });
    if (phase === 'Failed') Object.assign(st, { active: 0, failed: 1, conditions: [{ type: 'Failed', status: 'True', reason: 'BackoffLimitExceeded', message: 'Job has reached the specified backoff limit', lastTransitionTime: now }] });
  };

  const setContainer = (pod: FakePod, state: Obj, phase: string): void => {
    const st = pod.object['status'] as Obj;
    st['phase'] = phase;
    st['containerStatuses'] = [{ name: 'step', ready: phase === 'Running', restartCount: 0, image: ((pod.object['spec'] as Obj)['containers'] as Obj[])[0]?.['image'], state }];
    refreshJob(meta(pod.object)['namespace'] as string, labels(pod.object)['job-name'] as string);
  };

  /** The kubelet's part: start the pod's container as a local process. */
  const runPod = (pod: FakePod): void => {
    const spec = pod.object['spec'] as Obj;
    const c = (spec['containers'] as Obj[])[0] as Obj;
    const ns = meta(pod.object)['namespace'] as string;
    if (!fake.images.has(c['image'] as string)) return setContainer(pod, { waiting: { reason: 'ErrImagePull', message: `rpc error: code = Unknown desc = failed to pull image "${c['image']}": not found` } }, 'Pending');
    const env: Record<string, string> = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: '/tmp' };
    for (const from of (c['envFrom'] as Obj[] | undefined) ?? []) {
      const ref = (from['configMapRef'] ?? from['secretRef']) as Obj;
      const store = from['configMapRef'] ? fake.configMaps : fake.secrets;
      const data = store.get(`${ns}/${ref['name']}`);
      if (!data) return setContainer(pod, { waiting: { reason: 'CreateContainerConfigError', message: `${from['configMapRef'] ? 'configmap' : 'secret'} "${ref['name']}" not found` } }, 'Pending');
      Object.assign(env, data);
    }
    for (const e of (c['env'] as Obj[] | undefined) ?? []) env[e['name'] as string] = String(e['value'] ?? '');
    const [cmd, ...args] = c['command'] as string[];
    const argv = cmd === 'weft' ? [process.execPath, opts.weftBin, ...args] : [cmd as string, ...args];
    const proc = spawn(argv[0] as string, argv.slice(1), { env, cwd: (c['workingDir'] as string | undefined) ?? process.cwd(), stdio: ['ignore', 'pipe', 'pipe'] });
    pod.proc = proc;
    const keep = (b: Buffer): void => {
      pod.log = (pod.log + b.toString('utf8')).slice(-1_000_000);
    };
    proc.stdout?.on('data', keep);
    proc.stderr?.on('data', keep);
    setContainer(pod, { running: { startedAt: new Date().toISOString() } }, 'Running');
    const limit = memoryBytes(((c['resources'] as Obj | undefined)?.['limits'] as Obj | undefined)?.['memory']);
    if (limit !== null) {
      const timer = setInterval(() => {
        if (proc.pid === undefined || rssBytes(proc.pid) <= limit) return;
        pod.oomKilled = true;
        proc.kill('SIGKILL');
      }, 20);
      timers.add(timer);
      proc.once('exit', () => {
        clearInterval(timer);
        timers.delete(timer);
      });
    }
    proc.once('exit', (code, signal) => {
      const exitCode = code ?? 128 + (signal === 'SIGKILL' ? 9 : signal === 'SIGTERM' ? 15 : 1);
      const reason = pod.oomKilled ? 'OOMKilled' : exitCode === 0 ? 'Completed' : 'Error';
      setContainer(pod, { terminated: { exitCode, reason, finishedAt: new Date().toISOString() } }, exitCode === 0 ? 'Succeeded' : 'Failed');
      if ((pod.object['metadata'] as Obj)['deletionTimestamp']) fake.pods.delete(`${ns}/${meta(pod.object)['name']}`);
    });
  };

  /** Stops a pod (SIGTERM, SIGKILL after the grace period) and removes it once its process is gone. */
  const deletePod = (pod: FakePod, graceSeconds: number): void => {
    const key = `${meta(pod.object)['namespace']}/${meta(pod.object)['name']}`;
    (pod.object['metadata'] as Obj)['deletionTimestamp'] = new Date().toISOString();
    const p = pod.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) {
      fake.pods.delete(key);
      return;
    }
    if (graceSeconds <= 0) {
      p.kill('SIGKILL');
      p.once('exit', () => fake.pods.delete(key));
      return;
    }
    p.kill('SIGTERM');
    const timer = setTimeout(() => p.kill('SIGKILL'), graceSeconds * 1000);
    timers.add(timer);
    p.once('exit', () => {
      clearTimeout(timer);
      timers.delete(timer);
      fake.pods.delete(key);
    });
  };

  const createJob = (res: ServerResponse, ns: string, body: Obj): void => {
    const md = (body['metadata'] ?? {}) as Obj;
    const name = md['name'];
    const causes: { field: string; message: string }[] = [];
    if (typeof name !== 'string' || name.length > 63 || !DNS_1123_LABEL.test(name)) causes.push({ field: 'metadata.name', message: `a lowercase RFC 1123 label of at most 63 characters: ${JSON.stringify(name)}` });
    for (const [k, v] of Object.entries((md['labels'] ?? {}) as Record<string, string>)) if (v.length > 63 || !LABEL_VALUE.test(v)) causes.push({ field: `metadata.labels.${k}`, message: `invalid label value ${JSON.stringify(v)}` });
    const template = ((body['spec'] as Obj | undefined)?.['template'] ?? {}) as Obj;
    const podSpec = (template['spec'] ?? {}) as Obj;
    const containers = podSpec['containers'] as Obj[] | undefined;
    if (!Array.isArray(containers) || containers.length === 0 || !containers.every((c) => typeof c['name'] === 'string' && typeof c['image'] === 'string')) causes.push({ field: 'spec.template.spec.containers', message: 'Required value: containers with a name and an image' });
    if (podSpec['restartPolicy'] !== 'Never' && podSpec['restartPolicy'] !== 'OnFailure') causes.push({ field: 'spec.template.spec.restartPolicy', message: 'Unsupported value: "Always": supported values: "OnFailure", "Never"' });
    if (causes.length > 0) return status(res, 422, 'Invalid', `Job.batch "${String(name)}" is invalid: ${causes.map((c) => `${c.field}: ${c.message}`).join(', ')}`, { details: { name, kind: 'jobs', causes } });
    if (fake.jobs.has(`${ns}/${name}`)) return status(res, 409, 'AlreadyExists', `jobs.batch "${name}" already exists`, { details: { name, group: 'batch', kind: 'jobs' } });
    const uid = randomUUID();
    const job: Obj = { ...body, apiVersion: 'batch/v1', kind: 'Job', metadata: { ...md, namespace: ns, uid, creationTimestamp: new Date().toISOString(), resourceVersion: '1' }, status: { startTime: new Date().toISOString() } };
    fake.jobs.set(`${ns}/${name}`, job);
    const podName = `${name}-${randomBytes(3).toString('hex').slice(0, 5)}`;
    const pod: FakePod = {
      object: { apiVersion: 'v1', kind: 'Pod', metadata: { name: podName, namespace: ns, uid: randomUUID(), creationTimestamp: new Date().toISOString(), labels: { ...((template['metadata'] as Obj | undefined)?.['labels'] as Obj), 'job-name': name, 'controller-uid': uid } }, spec: podSpec, status: { phase: 'Pending' } },
      proc: null,
      log: '',
      oomKilled: false,
    };
    fake.pods.set(`${ns}/${podName}`, pod);
    send(res, 201, job);
    setImmediate(() => runPod(pod));
  };

  // TLS, as every API server: a certificate for 127.0.0.1 made for this server, its own CA in the kubeconfig.
  const keyFile = join(opts.dir, 'fake-k8s.key');
  const certFile = join(opts.dir, 'fake-k8s.crt');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  const cert = readFileSync(certFile);
  const server = createServer({ key: readFileSync(keyFile), cert }, (req, res) => {
    void handle(req, res).catch((err: unknown) => status(res, 500, 'InternalError', (err as Error).message));
  });
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://fake');
    fake.requests.push(`${req.method} ${url.pathname}`);
    if (req.headers.authorization !== `Bearer ${token}`) return status(res, 401, 'Unauthorized', 'Unauthorized');
    const body = await readBody(req);
    const selector = url.searchParams.get('labelSelector');
    let m: RegExpExecArray | null;
    if ((m = /^\/apis\/batch\/v1\/namespaces\/([^/]+)\/jobs$/.exec(url.pathname))) {
      const ns = m[1] as string;
      if (req.method === 'POST') return createJob(res, ns, body);
      if (req.method === 'GET') return send(res, 200, { kind: 'JobList', apiVersion: 'batch/v1', metadata: {}, items: [...fake.jobs.values()].filter((j) => meta(j)['namespace'] === ns && matches(labels(j), selector)) });
    } else if ((m = /^\/apis\/batch\/v1\/namespaces\/([^/]+)\/jobs\/([^/]+)$/.exec(url.pathname))) {
      const [ns, name] = [m[1] as string, m[2] as string];
      const job = fake.jobs.get(`${ns}/${name}`);
      if (!job) return status(res, 404, 'NotFound', `jobs.batch "${name}" not found`, { details: { name, group: 'batch', kind: 'jobs' } });
      if (req.method === 'GET') return send(res, 200, job);
      if (req.method === 'DELETE') {
        const policy = url.searchParams.get('propagationPolicy') ?? (body['propagationPolicy'] as string | undefined) ?? 'Background';
        const grace = Number(url.searchParams.get('gracePeriodSeconds') ?? body['gracePeriodSeconds'] ?? 30);
        const pods = policy === 'Orphan' ? [] : podsOf(ns, name);
        for (const p of pods) deletePod(p, grace);
        if (policy === 'Foreground' && pods.length > 0) {
          // The Job stays, marked for deletion, until its pods are gone.
          Object.assign(job['metadata'] as Obj, { deletionTimestamp: new Date().toISOString(), finalizers: ['foregroundDeletion'] });
          const gone = (): void => {
            if (podsOf(ns, name).length > 0) return void timers.add(setTimeout(gone, 20));
            fake.jobs.delete(`${ns}/${name}`);
          };
          gone();
          return send(res, 200, job);
        }
        fake.jobs.delete(`${ns}/${name}`);
        return send(res, 200, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', details: { name, group: 'batch', kind: 'jobs', uid: meta(job)['uid'] } });
      }
    } else if ((m = /^\/api\/v1\/namespaces\/([^/]+)\/pods$/.exec(url.pathname)) && req.method === 'GET') {
      const ns = m[1] as string;
      return send(res, 200, { kind: 'PodList', apiVersion: 'v1', metadata: {}, items: [...fake.pods.values()].map((p) => p.object).filter((p) => meta(p)['namespace'] === ns && matches(labels(p), selector)) });
    } else if ((m = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)(\/log)?$/.exec(url.pathname))) {
      const [ns, name] = [m[1] as string, m[2] as string];
      const pod = fake.pods.get(`${ns}/${name}`);
      if (!pod) return status(res, 404, 'NotFound', `pods "${name}" not found`, { details: { name, kind: 'pods' } });
      if (m[3] && req.method === 'GET') {
        const tail = url.searchParams.get('tailLines');
        const lines = pod.log.split('\n');
        if (lines.at(-1) === '') lines.pop();
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end(`${(tail === null ? lines : lines.slice(-Number(tail))).join('\n')}\n`);
        return;
      }
      if (req.method === 'GET') return send(res, 200, pod.object);
      if (req.method === 'DELETE') {
        deletePod(pod, Number(url.searchParams.get('gracePeriodSeconds') ?? 30));
        return send(res, 200, pod.object);
      }
    }
    return status(res, 404, 'NotFound', `the server could not find the requested resource (${req.method} ${url.pathname})`);
  };

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const kubeconfig = join(opts.dir, 'kubeconfig.json');
  writeFileSync(
    kubeconfig,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'fake', cluster: { server: url, 'certificate-authority-data': cert.toString('base64') } }],
      users: [{ name: 'weft-test', user: { token } }],
      contexts: [{ name: 'fake', context: { cluster: 'fake', user: 'weft-test', namespace: 'default' } }],
      'current-context': 'fake',
    }),
  );
  return {
    ...fake,
    url,
    kubeconfig,
    request: (method, path) =>
      new Promise((resolve, reject) => {
        const req = httpsRequest(`${url}${path}`, { method, ca: cert, headers: { authorization: `Bearer ${token}` } }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Obj }));
        });
        req.on('error', reject);
        req.end();
      }),
    close: async () => {
      for (const t of timers) clearTimeout(t);
      for (const p of fake.livePods()) p.proc?.kill('SIGKILL');
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function send(res: ServerResponse, code: number, body: unknown): void {
  res.writeHead(code, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

async function readBody(req: IncomingMessage): Promise<Obj> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  return text ? (JSON.parse(text) as Obj) : {};
}

function meta(o: Obj): Obj {
  return (o['metadata'] ?? {}) as Obj;
}

function labels(o: Obj): Record<string, string> {
  return (meta(o)['labels'] ?? {}) as Record<string, string>;
}

/** Equality-based label selectors: `a=b,c=d`. */
function matches(l: Record<string, string>, selector: string | null): boolean {
  if (!selector) return true;
  return selector.split(',').every((term) => {
    const [k, v] = term.split('=');
    return k !== undefined && l[k.trim()] === v?.trim();
  });
}

/** A memory quantity ('128Mi', '1G', '500000') in bytes. */
function memoryBytes(q: unknown): number | null {
  if (q === undefined || q === null) return null;
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(String(q));
  if (!m) return null;
  const unit: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, k: 1e3, M: 1e6, G: 1e9, T: 1e12 };
  return Number(m[1]) * (m[2] ? (unit[m[2]] as number) : 1);
}

function rssBytes(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}
