import { defineModule, type Runtime } from '../../src/index.ts';
import { mailConfig } from './config.ts';
import { createMailer, type Mailer, type Message } from './service.ts';

export type { Message };

const mailers = new WeakMap<Runtime, Mailer>();

/** Outgoing mail: the console transport (prints whole messages to the log) or SMTP via nodemailer. */
export default defineModule({
  name: 'mail',
  config: mailConfig,
  start(runtime) {
    mailers.set(runtime, createMailer(runtime));
  },
  stop(runtime) {
    mailers.get(runtime)?.close();
  },
  api: {
    /** Sends one message; throws when the transport refuses it. */
    send(runtime: Runtime, message: Message): Promise<void> {
      const mailer = mailers.get(runtime);
      if (!mailer) throw new Error('The mail module has not started');
      return mailer.send(message);
    },
  },
});
