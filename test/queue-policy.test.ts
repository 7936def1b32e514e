/** What a job in Redis may make a queue worker do (src/jobs/queue/policy.ts). */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { launchRefusal, moduleRefusal, type QueuePolicy } from '../src/jobs/queue/policy.ts';
import type { LaunchConfig } from '../src/jobs/queue/job-data.ts';

const dir = mkdtempSync(join(tmpdir(), 'weft-policy-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const root = join(dir, 'app');
mkdirSync(join(root, 'src'), { recursive: true });
writeFileSync(join(root, 'src', 'defs.mjs'), '');
writeFileSync(join(dir, 'elsewhere.mjs'), '');
symlinkSync(join(dir, 'elsewhere.mjs'), join(root, 'src', 'link.mjs'));
const policy: QueuePolicy = { codeRoot: root, mounts: ['/data'], trustLaunchOptions: false };

const docker = (d: Record<string, unknown>): LaunchConfig => ({ docker: { volumes: [], containerOptions: {}, ...d } }) as unknown as LaunchConfig;
const k8s = (k: Record<string, unknown>): LaunchConfig => ({ k8s: { podSpec: {}, jobSpec: {}, volumes: [], perStepK8sConfig: {}, ...k } }) as unknown as LaunchConfig;

describe('a queue worker holds jobs to its policy', () => {
  it('imports code locations inside its code root only, whatever the path says', () => {
    expect(moduleRefusal(pathToFileURL(join(root, 'src', 'defs.mjs')).href, policy)).toBeNull();
    expect(moduleRefusal('src/defs.mjs', policy)).toBeNull();
    expect(moduleRefusal(pathToFileURL(join(dir, 'elsewhere.mjs')).href, policy)).toMatch(/is outside this worker's code root/);
    expect(moduleRefusal('../elsewhere.mjs', policy)).toMatch(/is outside this worker's code root/);
    // A link inside the root to a file outside it is outside.
    expect(moduleRefusal('src/link.mjs', policy)).toMatch(/is outside this worker's code root/);
    expect(moduleRefusal('src/nope.mjs', policy)).toMatch(/does not exist on this worker/);
  });

  it('takes launch options that grant nothing beyond the image, and host paths below its mounts', () => {
    expect(launchRefusal(docker({ volumes: ['/data/in:/in:ro', 'named:/cache'], containerOptions: { Labels: { a: 'b' }, HostConfig: { Memory: 1e9 } } }), policy)).toBeNull();
    expect(launchRefusal(docker({ volumes: ['/etc:/host-etc'] }), policy)).toMatch(/^launch\.docker\.volumes mounts the host path \/etc, not below an --allow-mount prefix/);
    expect(launchRefusal(docker({ volumes: ['/data-other:/x'] }), policy)).toMatch(/host path \/data-other/);
    expect(launchRefusal(docker({ containerOptions: { HostConfig: { Privileged: true } } }), policy)).toMatch(/^launch\.docker\.containerOptions\.HostConfig\.Privileged/);
    expect(launchRefusal(docker({ containerOptions: { Entrypoint: ['sh'] } }), policy)).toMatch(/^launch\.docker\.containerOptions\.Entrypoint/);
    expect(launchRefusal(k8s({ volumes: [{ name: 'c', configMap: { name: 'x' } }] }), policy)).toBeNull();
    expect(launchRefusal(k8s({ volumes: [{ name: 'h', hostPath: { path: '/var/run/docker.sock' } }] }), policy)).toMatch(/^launch\.k8s\.volumes mounts the host path \/var\/run\/docker\.sock/);
    expect(launchRefusal(k8s({ kubeconfig: '/root/.kube/admin' }), policy)).toMatch(/^launch\.k8s\.kubeconfig/);
    expect(launchRefusal(k8s({ perStepK8sConfig: { train: { podSpec: { hostNetwork: true } } } }), policy)).toMatch(/^launch\.k8s\.perStepK8sConfig\.train\.podSpec/);
    expect(launchRefusal(k8s({ kubeconfig: '/x', podSpec: { hostPID: true } }), { ...policy, trustLaunchOptions: true })).toBeNull();
  });
});
