/**
 * A custom step handler: each step attempt runs `weft step` in a child
 * process of this one. The step-delegating loop does the rest (ready steps,
 * limits, priorities, retries, health checks, cancellation); the step
 * connects back to the run's coordinator over WebSocket, as a container
 * would. Swap `spawn` for your own launcher (a VM, a batch system) and
 * keep the rest.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { stepDelegatingConfig, stepDelegatingExecutor, weftCommand, type StepHandler, type StepHandlerContext } from '../src/index.ts';

export function subprocessHandler(): StepHandler {
  const children = new Map<StepHandlerContext, ChildProcess>();
  return {
    name: 'subprocess',

    async launch(ctx) {
      const { args, env } = await ctx.weftStep();
      const [node, cli] = weftCommand();
      const child = spawn(node, [cli, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'inherit', 'inherit'] });
      children.set(ctx, child);
      await new Promise<void>((resolve, reject) => {
        child.once('spawn', resolve);
        child.once('error', reject);
      });
    },

    async checkHealth(ctx) {
      const child = children.get(ctx);
      if (!child || (child.exitCode === null && child.signalCode === null)) return { healthy: true };
      return { healthy: false, reason: `weft step (pid ${child.pid}) ${child.signalCode ? `was killed by ${child.signalCode}` : `exited with code ${child.exitCode}`}` };
    },

    async terminate(ctx) {
      const child = children.get(ctx);
      children.delete(ctx);
      if (!child || child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      // A finished step is on its way out; anything else is stopped, politely first.
      const grace = setTimeout(() => child.kill('SIGKILL'), ctx.finished ? 5000 : 2000);
      if (!ctx.finished) child.kill('SIGTERM');
      await exited;
      clearTimeout(grace);
    },
  };
}

export const subprocessExecutor = stepDelegatingExecutor({
  name: 'subprocess',
  configSchema: stepDelegatingConfig,
  handler: () => subprocessHandler(),
});
