//! The DHT's record store: kad's [`MemoryStore`] for what other peers store here (IPNS records,
//! their provider records), and a plain set of keys for what this hub provides itself.
//!
//! `MemoryStore` keeps every provided key's providers in a `SmallVec` of 20 inline records
//! (`size_of::<ProviderRecord>()` is 152 bytes, so 3,040 bytes) and our own records once more
//! in a set, so each key this hub announces cost about 3.2 KB whether it has one provider or
//! twenty: 25 MB of a 512 MiB repo's hub (massif), gigabytes for a large one. A provider
//! record of our own says nothing but its key (no expiry, no addresses: kad adds the listen
//! addresses when it answers), so the key is all that is kept (a 32-byte `RecordKey` and its
//! 34-byte multihash on the heap).

use std::borrow::Cow;
use std::collections::HashSet;
use std::collections::hash_set;

use libp2p::PeerId;
use libp2p::kad::store::{self, MemoryStore, RecordStore};
use libp2p::kad::{ProviderRecord, Record, RecordKey};

/// See the module documentation.
pub struct HubRecords {
    /// Other peers' records.
    inner: MemoryStore,
    local: PeerId,
    /// Keys this hub provides.
    own: HashSet<RecordKey>,
    max_own: usize,
}

impl HubRecords {
    pub fn new(local: PeerId, inner: MemoryStore, max_own: usize) -> Self {
        HubRecords {
            inner,
            local,
            own: HashSet::new(),
            max_own,
        }
    }

    fn own_record(&self, key: &RecordKey) -> ProviderRecord {
        ProviderRecord::new(key.clone(), self.local, Vec::new())
    }
}

impl std::fmt::Debug for HubRecords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubRecords")
            .field("local", &self.local)
            .field("own", &self.own.len())
            .finish_non_exhaustive()
    }
}

/// This hub's provider records, built from their keys as they are iterated.
#[derive(Debug)]
pub struct OwnRecords<'a> {
    keys: hash_set::Iter<'a, RecordKey>,
    local: PeerId,
}

impl<'a> Iterator for OwnRecords<'a> {
    type Item = Cow<'a, ProviderRecord>;

    fn next(&mut self) -> Option<Self::Item> {
        let key = self.keys.next()?;
        Some(Cow::Owned(ProviderRecord::new(
            key.clone(),
            self.local,
            Vec::new(),
        )))
    }
}

impl RecordStore for HubRecords {
    type RecordsIter<'a> = <MemoryStore as RecordStore>::RecordsIter<'a>;
    type ProvidedIter<'a> = OwnRecords<'a>;

    fn get(&self, k: &RecordKey) -> Option<Cow<'_, Record>> {
        self.inner.get(k)
    }

    fn put(&mut self, r: Record) -> store::Result<()> {
        self.inner.put(r)
    }

    fn remove(&mut self, k: &RecordKey) {
        self.inner.remove(k)
    }

    fn records(&self) -> Self::RecordsIter<'_> {
        self.inner.records()
    }

    fn add_provider(&mut self, record: ProviderRecord) -> store::Result<()> {
        if record.provider != self.local {
            return self.inner.add_provider(record);
        }
        if self.own.len() >= self.max_own && !self.own.contains(&record.key) {
            return Err(store::Error::MaxProvidedKeys);
        }
        self.own.insert(record.key);
        Ok(())
    }

    fn providers(&self, key: &RecordKey) -> Vec<ProviderRecord> {
        let mut out = self.inner.providers(key);
        if self.own.contains(key) {
            out.push(self.own_record(key));
        }
        out
    }

    fn provided(&self) -> Self::ProvidedIter<'_> {
        OwnRecords {
            keys: self.own.iter(),
            local: self.local,
        }
    }

    fn remove_provider(&mut self, k: &RecordKey, p: &PeerId) {
        if *p == self.local {
            self.own.remove(k);
        } else {
            self.inner.remove_provider(k, p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> RecordKey {
        RecordKey::new(&[n; 34])
    }

    #[test]
    fn own_records_are_keys_and_others_go_to_the_memory_store() {
        let local = PeerId::random();
        let other = PeerId::random();
        let mut s = HubRecords::new(local, MemoryStore::new(local), 2);
        s.add_provider(ProviderRecord::new(key(1), local, Vec::new()))
            .unwrap();
        s.add_provider(ProviderRecord::new(key(1), other, Vec::new()))
            .unwrap();
        let mut who: Vec<PeerId> = s.providers(&key(1)).iter().map(|r| r.provider).collect();
        who.sort();
        let mut both = vec![local, other];
        both.sort();
        assert_eq!(who, both);
        assert_eq!(s.provided().count(), 1);
        assert!(s.providers(&key(2)).is_empty());

        // The cap counts our own keys; announcing a held key again is no new key.
        s.add_provider(ProviderRecord::new(key(2), local, Vec::new()))
            .unwrap();
        s.add_provider(ProviderRecord::new(key(2), local, Vec::new()))
            .unwrap();
        assert!(matches!(
            s.add_provider(ProviderRecord::new(key(3), local, Vec::new())),
            Err(store::Error::MaxProvidedKeys)
        ));

        s.remove_provider(&key(1), &local);
        assert_eq!(
            s.providers(&key(1))
                .iter()
                .map(|r| r.provider)
                .collect::<Vec<_>>(),
            [other]
        );
        s.remove_provider(&key(1), &other);
        assert!(s.providers(&key(1)).is_empty());
        let left: Vec<RecordKey> = s.provided().map(|r| r.into_owned().key).collect();
        assert_eq!(left, [key(2)]);
    }
}
