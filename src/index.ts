// The kernel's public surface, for modules and configuration files.
export type { Builder } from './builder.ts';
/** For module-level type refs (`builder.objectRef`); fields are registered in `defineModule({ graphql })`. */
export { builder } from './builder.ts';
export type { ConfigFile, Environment, LoadedConfig, Mode, PorticoConfig, Settings } from './config.ts';
export { ConfigError, defineConfig } from './config.ts';
export type { AuthScopes, RequestContext, ScopeLoaders, Viewer } from './context.ts';
export { anonymousViewer } from './context.ts';
export type { Database, Databases, Dialect } from './db.ts';
export { dialectOf, inBatches, runStatement, selectRows } from './db.ts';
export type { ErrorCode } from './errors.ts';
export { fail, isDatabaseUnavailable, PorticoError } from './errors.ts';
export type { PageOptions } from './html.ts';
export { csrfFor, csrfOk, escapeHtml, html, readForm, redirect, renderPage, SafeHtml } from './html.ts';
export { fromGlobalId, newId, toGlobalId } from './ids.ts';
export type { Credential, CredentialEnd, CredentialKind, CredentialWatch, EndedFinder } from './live.ts';
export { credentialOf, LiveCredentials } from './live.ts';
export type { Logger } from './logger.ts';
export type { CredentialResolver, ModuleCommand, ModuleDefinition, PorticoModule } from './module.ts';
export { defineModule } from './module.ts';
export type { Connection } from './pagination.ts';
export {
  DEFAULT_PAGE_SIZE,
  decodeCursor,
  encodeCursor,
  MAX_PAGE_SIZE,
  pageSize,
  paginate,
} from './pagination.ts';
export type { PubSub, TopicName, Topics } from './pubsub.ts';
export type { HttpMethod, Route } from './routes.ts';
export { hasCsrfHeader } from './routes.ts';
export type { Clock, Runtime } from './runtime.ts';
export { every } from './runtime.ts';
export { randomSecret, sameDigest, sha256 } from './secrets.ts';
export type {
  BlobContent,
  BlobCreation,
  BlobDeletion,
  BlobMetadataStore,
  BlobRecord,
  DocumentBody,
  DocumentChange,
  DocumentCursor,
  DocumentDeletion,
  DocumentGuard,
  DocumentPage,
  DocumentQuery,
  DocumentSelection,
  DocumentStore,
  DocumentWrite,
  DocumentWritten,
  Fence,
  IndexRange,
  LeaseRecord,
  LeaseStore,
  RangeBound,
  StoreBackend,
  StoreCollection,
  StoredDocument,
  StoreEventName,
  StoreEventPayloads,
  StoreEvents,
  StoreIndex,
  WriteConditions,
} from './store/backend.ts';
