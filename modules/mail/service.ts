import nodemailer, { type Transporter } from 'nodemailer';
import type { Runtime } from '../../src/index.ts';

export interface Message {
  to: string;
  subject: string;
  text: string;
}

export interface Mailer {
  send(message: Message): Promise<void>;
  close(): void;
}

/** Prints each message to the log in one block, links in full: for development and tests. */
function consoleMailer(runtime: Runtime, from: string): Mailer {
  return {
    async send(message) {
      runtime.log.info(
        { mail: { from, to: message.to, subject: message.subject } },
        `mail to ${message.to}: ${message.subject}\n\n${message.text}`,
      );
    },
    close() {},
  };
}

function smtpMailer(url: string, from: string): Mailer {
  const transport: Transporter = nodemailer.createTransport(url);
  return {
    async send(message) {
      await transport.sendMail({ from, ...message });
    },
    close() {
      transport.close();
    },
  };
}

export function createMailer(runtime: Runtime): Mailer {
  const { transport, from } = runtime.settings.mail;
  const sender = from ?? `Portico <no-reply@${new URL(runtime.env.publicUrl).hostname}>`;
  return transport === 'console' ? consoleMailer(runtime, sender) : smtpMailer(transport, sender);
}
