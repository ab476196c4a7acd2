export type {
  AttestedNode,
  BundleRecord,
  CertificateKind,
  Datastore,
  EntryFilter,
  IssuedCertificate,
  JoinTokenRecord,
  NewBundle,
  NewJoinToken,
  NewRegistrationEntry,
  RegistrationEntry,
} from "./datastore.ts";
export { CERTIFICATE_KINDS } from "./datastore.ts";
export { STORE_ERROR_CODES, StoreError, type StoreErrorCode } from "./errors.ts";
export { APPLICATION_ID, LATEST_VERSION, MIGRATIONS, type Migration } from "./migrations.ts";
export { SqliteDatastore, type SqliteOpenOptions } from "./sqlite.ts";
