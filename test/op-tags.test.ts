/** JSON op tags (weft/resources, weft/docker, weft/k8s): parsed in one place, precedence of container and Job config. */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { buildPlan, type PlannedStep } from '../src/jobs/plan.ts';
import { job, op } from '../src/index.ts';
import { jsonTag } from '../src/jobs/op-tags.ts';
import { containerConfigFor } from '../src/jobs/handlers/docker-config.ts';
import { jobConfigFor, type StepJobConfig } from '../src/jobs/handlers/k8s-config.ts';

function stepWith(tags: Record<string, string>): PlannedStep {
  const tagged = op({ name: 'tagged', tags }, () => 1);
  return buildPlan('run', job({ name: 'j' }, () => void tagged()), new Map()).step('tagged');
}

describe('JSON op tags', () => {
  it('gives the checked value, or undefined without the tag', () => {
    expect(jsonTag(stepWith({ 'x/y': '{"n": 2}' }), 'x/y', z.object({ n: z.number() }), 'a number')).toEqual({ n: 2 });
    expect(jsonTag(stepWith({}), 'x/y', z.object({ n: z.number() }), 'a number')).toBeUndefined();
  });

  it('names the op, the tag and what is wrong', () => {
    expect(() => jsonTag(stepWith({ 'x/y': '{n: 2}' }), 'x/y', z.object({ n: z.number() }), '{"n": NUMBER}')).toThrow(/op tagged: tag x\/y must be \{"n": NUMBER\}; it is not JSON/);
    expect(() => jsonTag(stepWith({ 'x/y': '{"n": "two"}' }), 'x/y', z.object({ n: z.number() }), '{"n": NUMBER}')).toThrow(/op tagged: tag x\/y must be \{"n": NUMBER\}: n: .*\(got "\{\\"n\\": \\"two\\"\}"\)/);
  });

  it('weft/docker: the op tag over the executor config (lists add up, containerOptions merge)', () => {
    const base = { image: 'a:1', env: ['X=1'], volumes: ['/h:/c'], containerOptions: { HostConfig: { Memory: 1, CpuShares: 2 } } };
    const s = stepWith({ 'weft/docker': JSON.stringify({ image: 'b:2', env: ['Y=2'], containerOptions: { HostConfig: { Memory: 5 } } }) });
    expect(containerConfigFor(s, base)).toEqual({ image: 'b:2', env: ['X=1', 'Y=2'], volumes: ['/h:/c'], containerOptions: { HostConfig: { Memory: 5, CpuShares: 2 } } });
    expect(() => containerConfigFor(stepWith({ 'weft/docker': '{"imagine": 1}' }), base)).toThrow(/tag weft\/docker must be/);
  });

  it('weft/k8s: executor config < op tag < perStepK8sConfig', () => {
    const base: StepJobConfig = { image: 'a:1', imagePullSecrets: [], env: ['X=exec'], envConfigMaps: [], envSecrets: [], volumes: [], volumeMounts: [], labels: { a: '1' }, resources: { limits: { memory: '1Gi' } }, podSpec: { nodeSelector: { pool: 'x' } }, jobSpec: {} };
    const s = stepWith({ 'weft/k8s': JSON.stringify({ image: 'b:2', env: ['X=tag'], labels: { b: '2' }, resources: { limits: { cpu: '1' } }, podSpec: { nodeSelector: { zone: 'z' } } }) });
    const c = jobConfigFor(s, base, { tagged: { image: 'c:3', env: ['X=per-step'], labels: { a: 'per-step' } } });
    expect(c.image).toBe('c:3');
    expect(c.env).toEqual(['X=exec', 'X=tag', 'X=per-step']);
    expect(c.labels).toEqual({ a: 'per-step', b: '2' });
    expect(c.resources).toEqual({ limits: { memory: '1Gi', cpu: '1' }, requests: {} });
    expect(c.podSpec).toEqual({ nodeSelector: { pool: 'x', zone: 'z' } });
  });
});
