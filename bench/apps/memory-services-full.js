// The services of memory-services.js, loaded after the whole `cluster-steward` entry, as an application
// that imports `defineServices` from 'cluster-steward' (not 'cluster-steward/services') pays for.
import 'cluster-steward';

export { default } from './memory-services.js';
