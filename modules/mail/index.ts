import { defineModule, type ModuleInstance } from '../../src/index.ts';
import { mailConfig } from './config.ts';
import { createMailer, type Message } from './service.ts';

export type { Message };

/** The mail module of one gateway, as dependent modules use it. */
export interface Mail {
  /** Sends one message; throws when the transport refuses it. */
  send(message: Message): Promise<void>;
}

/** Outgoing mail: the console transport (prints whole messages to the log) or SMTP via nodemailer. */
export default defineModule({
  name: 'mail',
  config: mailConfig,
  setup(runtime): Mail & ModuleInstance {
    // Created on first use: a command that sends nothing opens no SMTP pool.
    let mailer: ReturnType<typeof createMailer> | undefined;
    return {
      send(message: Message): Promise<void> {
        mailer ??= createMailer(runtime);
        return mailer.send(message);
      },
      stop() {
        mailer?.close();
      },
    };
  },
});
