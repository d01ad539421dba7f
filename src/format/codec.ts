/**
 * memjob's own msgpackr instances. No extension is registered (msgpackr's
 * extension registry is process-global, and a user's own msgpackr would see
 * it): the structure is plain msgpack, and tags in the tree say the rest.
 */
import { Packr, Unpackr } from 'msgpackr';

export const packr = new Packr({ useRecords: false, moreTypes: false, structuredClone: false });
export const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: false, structuredClone: false, int64AsType: 'number' });
