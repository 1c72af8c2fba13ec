import { PorticoError, type PorticoModule, type Runtime } from '../../src/index.ts';
import { BUILTIN_METHODS } from './config.ts';
import { type LoginMethod, loginMethods, type TokenRedeemer, tokenPurposes } from './extensions.ts';

/**
 * What the modules of one gateway contribute to sign-in, read once every module is set up: the
 * configured login methods, in configuration order, and the redeemer of each token purpose.
 */
export class SignInMethods {
  readonly enabled: readonly LoginMethod[];
  readonly #redeemers = new Map<string, TokenRedeemer>();

  /** Throws when two modules handle one token purpose. */
  constructor(runtime: Runtime) {
    const provided = new Map(
      runtime.instances.contributions(loginMethods).map((method) => [method.id, method]),
    );
    this.enabled = runtime.settings.methods.flatMap((id) => provided.get(id) ?? []);
    for (const { purpose, redeem } of runtime.instances.contributions(tokenPurposes)) {
      if (this.#redeemers.has(purpose)) throw new Error(`Token purpose "${purpose}" is handled twice`);
      this.#redeemers.set(purpose, redeem);
    }
  }

  require(id: string): LoginMethod {
    const method = this.enabled.find((candidate) => candidate.id === id);
    if (!method) throw new PorticoError('FORBIDDEN', `The "${id}" login method is not enabled.`);
    return method;
  }

  isEnabled(id: string): boolean {
    return this.enabled.some((method) => method.id === id);
  }

  redeemerOf(purpose: string): TokenRedeemer | undefined {
    return this.#redeemers.get(purpose);
  }
}

/** Configuration check: every configured method is built in or contributed by a module. */
export function checkMethods(methods: readonly string[], modules: readonly PorticoModule[]): string[] {
  const contributed = modules.flatMap((module) =>
    (module.contributes ?? []).flatMap((contribution) =>
      contribution.point === loginMethods ? [(contribution.value as LoginMethod).id] : [],
    ),
  );
  const known = new Set<string>([...BUILTIN_METHODS, ...contributed]);
  return methods.flatMap((method, i) =>
    known.has(method)
      ? []
      : [`methods.${i}: unknown login method "${method}" (known: ${[...known].join(', ')})`],
  );
}
