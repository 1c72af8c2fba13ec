// The kernel's public surface, for modules and configuration files.
export type { Builder } from './builder.ts';
/** For module-level type refs (`builder.objectRef`); fields are registered in `defineModule({ graphql })`. */
export { builder } from './builder.ts';
export type { ConfigFile, Environment, Mode, Settings } from './config.ts';
export { ConfigError } from './config.ts';
export type { AuthScopes, RequestContext, ScopeLoaders } from './context.ts';
export type { Database, Databases, Dialect } from './db.ts';
export { dialectOf, inBatches, runStatement, selectRows } from './db.ts';
export type { ErrorCode } from './errors.ts';
export { fail, isDatabaseUnavailable, PorticoError, serviceUnavailable } from './errors.ts';
export type { Contribution } from './extensions.ts';
export { ExtensionPoint } from './extensions.ts';
export type { DatabaseHealth, DatabasesHealth } from './health.ts';
export { databasesHealth } from './health.ts';
export type { PageOptions } from './html.ts';
export { csrfFor, csrfOk, escapeHtml, html, readForm, redirect, renderPage, SafeHtml } from './html.ts';
export { fromGlobalId, newId, toGlobalId } from './ids.ts';
export type { Credential, CredentialEnd, CredentialKind, CredentialWatch, EndedFinder } from './live.ts';
export { credentialOf, LiveCredentials } from './live.ts';
export type { LoadedConfig, PorticoConfig } from './load-config.ts';
export { defineConfig } from './load-config.ts';
export type { Logger } from './logger.ts';
export type {
  CredentialResolver,
  ModuleCommand,
  ModuleDefinition,
  ModuleInstance,
  PorticoModule,
  UseModule,
} from './module.ts';
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
export type { Runtime } from './runtime.ts';
export type { SealPasswords } from './secrets.ts';
export { randomSecret, sameDigest, sealPasswords, sha256 } from './secrets.ts';
export {
  emptyTables,
  insertRows,
  openSnapshot,
  systemTableShapes,
  tablesWithRows,
} from './snapshot.ts';
export type {
  ArchivedStoreTable,
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
  StoreAbout,
  StoreArchive,
  StoreArchiveItem,
  StoreBackend,
  StoreCollection,
  StoredDocument,
  StoreEventName,
  StoreEventPayloads,
  StoreEvents,
  StoreIndex,
  WriteConditions,
} from './store/backend.ts';
export { ARCHIVED_STORE_TABLES } from './store/backend.ts';
export type {
  BlobStorage,
  BlobStorageTarget,
  ByteRange,
  S3Location,
  StagedBlob,
  StageOptions,
  StoredContent,
} from './store/blob-storage.ts';
export {
  BlobTooLarge,
  limitedUpload,
  parseBlobStorageUrl,
  UploadInterrupted,
} from './store/blob-storage.ts';
export { MAX_BYTES_HEADER } from './store/remote/bytes.ts';
export type {
  DeclaredCollection,
  Namespace,
  Wire,
  WireArchiveLine,
  WireCollection,
  WireEvent,
} from './store/remote/protocol.ts';
export {
  collectionDifferences,
  declaredCollections,
  EVENT_PING_MS,
  fromWireBlob,
  fromWireDocument,
  STORE_ARCHIVE_SCOPE,
  STORE_PROTOCOL_PATH,
  STORE_SERVE_SCOPE,
  toWireBlob,
  toWireCollection,
  toWireDocument,
} from './store/remote/protocol.ts';
export {
  answer,
  callerOf,
  errorResponse,
  readCall,
  refusal,
  wireErrorOf,
  wireFence,
  wireText,
  wireVersion,
} from './store/remote/serve.ts';
export { createDatabaseBlobStorage } from './store/sql/blob-chunks.ts';
export type { StreamedBodyHooks } from './streamed-response.ts';
export { streamedResponse } from './streamed-response.ts';
export type { ColumnKind, TableRow, TableShape } from './tables.ts';
export { rowProblem } from './tables.ts';
export { currentRequestId } from './telemetry/request-scope.ts';
export { traceBlobStorage } from './telemetry/tracing.ts';
export type { Clock } from './timers.ts';
export { every } from './timers.ts';
export type { Viewer } from './viewer.ts';
export { anonymousViewer } from './viewer.ts';
