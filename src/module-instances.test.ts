import { describe, expect, it } from 'vitest';
import { ExtensionPoint } from './extensions.ts';
import { composeModules, defineModule, type ModuleInstance } from './module.ts';
import { ModuleSet } from './module-instances.ts';
import type { Runtime } from './runtime.ts';

const greetings = new ExtensionPoint<string>('test: greetings');

/** A runtime is only passed through to `setup` here. */
const runtime = {} as Runtime;

describe('ModuleSet', () => {
  it('sets modules up in dependency order, each with its dependencies’ instances', () => {
    const order: string[] = [];
    const base = defineModule({
      name: 'base',
      setup(): ModuleInstance & { value: number } {
        order.push('base');
        return { value: 41 };
      },
    });
    const top = defineModule({
      name: 'top',
      dependsOn: ['base'],
      setup(_runtime, use): ModuleInstance & { value: number } {
        order.push('top');
        return { value: use(base).value + 1 };
      },
    });
    const set = new ModuleSet(composeModules([top, base]));
    set.setUp(runtime);
    expect(order).toEqual(['base', 'top']);
    expect(set.of(top).value).toBe(42);
  });

  it('refuses an instance the module did not declare in dependsOn', () => {
    const hidden = defineModule({ name: 'hidden', setup: () => ({}) });
    const sneaky = defineModule({
      name: 'sneaky',
      setup: (_runtime, use): ModuleInstance & { peek: ModuleInstance } => ({ peek: use(hidden) }),
    });
    const set = new ModuleSet(composeModules([hidden, sneaky]));
    expect(() => set.setUp(runtime)).toThrow('Module "sneaky" uses "hidden" without naming it in dependsOn');
  });

  it('collects contributions from definitions and instances in module order', () => {
    const first = defineModule({ name: 'first', contributes: [greetings.with('static')] });
    const second = defineModule({
      name: 'second',
      dependsOn: ['first'],
      setup: () => ({ contributes: [greetings.with('from the instance')] }),
    });
    const other = new ExtensionPoint<string>('test: other');
    const set = new ModuleSet(composeModules([second, first]));
    set.setUp(runtime);
    expect(set.contributions(greetings)).toEqual(['static', 'from the instance']);
    expect(set.contributions(other)).toEqual([]);
  });

  it('starts in dependency order and stops in reverse, awaiting each', async () => {
    const events: string[] = [];
    const tracked = (name: string, dependsOn: string[] = []) =>
      defineModule({
        name,
        dependsOn,
        setup: () => ({
          async start() {
            await Promise.resolve();
            events.push(`start ${name}`);
          },
          async stop() {
            await Promise.resolve();
            events.push(`stop ${name}`);
          },
        }),
      });
    const set = new ModuleSet(composeModules([tracked('c', ['b']), tracked('a'), tracked('b', ['a'])]));
    set.setUp(runtime);
    await set.start();
    await set.stop();
    expect(events).toEqual(['start a', 'start b', 'start c', 'stop c', 'stop b', 'stop a']);
  });

  it('says which module is not set up', () => {
    const absent = defineModule({ name: 'absent' });
    expect(() => new ModuleSet([]).of(absent)).toThrow('Module "absent" is not set up in this gateway');
  });
});
