//! The plugins' own tables (a consensus plugin's ledger), inside a batch.
//!
//! Each plugin call runs as a [`PluginCall`]: its writes go straight into
//! the batch's transaction and are also recorded in an undo log, so a call
//! that fails is rolled back alone while the rest of the batch commits.
//! (LMDB nested transactions would do the same, but a table created inside
//! one dies with it; the undo log has no such trap.)

use heed::types::Bytes;
use meshpay_host::{HostError, KvStore};

use crate::batch::Batch;
use crate::{PluginTables, StoreError, Table};

impl PluginTables {
    pub(crate) fn forget(&mut self, name: &str) {
        if let Some(h) = self.by_name.remove(name) {
            self.handles[h as usize] = None;
        }
    }
}

fn valid_table_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

fn host_error(e: StoreError) -> HostError {
    match e {
        StoreError::MapFull => HostError::Full,
        _ => HostError::Failed,
    }
}

/// One undoable write: the table, the key, and the value before the write.
struct Undo {
    table: Table,
    key: Vec<u8>,
    old: Option<Vec<u8>>,
}

/// A plugin call's view of its tables. Call [`PluginCall::finish`] with the
/// call's outcome; dropped unfinished, it rolls back.
pub struct PluginCall<'b, 's> {
    batch: &'b mut Batch<'s>,
    prefix: String,
    undo: Vec<Undo>,
    finished: bool,
}

impl<'s> Batch<'s> {
    /// Starts a call of plugin `plugin_id` against its tables.
    pub fn plugin_call<'b>(&'b mut self, plugin_id: &str) -> PluginCall<'b, 's> {
        PluginCall { batch: self, prefix: format!("p/{plugin_id}/"), undo: Vec::new(), finished: false }
    }
}

impl PluginCall<'_, '_> {
    /// Keeps the call's writes if `ok`, otherwise undoes them.
    pub fn finish(mut self, ok: bool) -> Result<(), StoreError> {
        self.finished = true;
        if ok { Ok(()) } else { self.rollback() }
    }

    fn rollback(&mut self) -> Result<(), StoreError> {
        let (_, txn) = self.batch.parts();
        while let Some(u) = self.undo.pop() {
            match u.old {
                Some(v) => u.table.put(txn, &u.key, &v)?,
                None => {
                    u.table.delete(txn, &u.key)?;
                }
            }
        }
        Ok(())
    }

    /// The table behind a handle, if it belongs to this plugin.
    fn table(&self, handle: u32) -> Result<Table, HostError> {
        let reg = self.batch.store.plugin_tables();
        match reg.handles.get(handle as usize) {
            Some(Some((name, table))) if name.starts_with(&self.prefix) => Ok(*table),
            _ => Err(HostError::Invalid),
        }
    }

    fn remember(&mut self, table: Table, key: &[u8]) -> Result<(), HostError> {
        let old = table.get(self.batch.txn(), key).map_err(|e| host_error(e.into()))?.map(<[u8]>::to_vec);
        self.undo.push(Undo { table, key: key.to_vec(), old });
        Ok(())
    }
}

impl Drop for PluginCall<'_, '_> {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.rollback();
        }
    }
}

impl KvStore for PluginCall<'_, '_> {
    fn open(&mut self, name: &str) -> Result<u32, HostError> {
        if !valid_table_name(name) {
            return Err(HostError::Invalid);
        }
        let full = format!("{}{name}", self.prefix);
        let store = self.batch.store;
        if let Some(&h) = store.plugin_tables().by_name.get(&full) {
            return Ok(h);
        }
        let (_, txn) = self.batch.parts();
        let table =
            store.env.create_database::<Bytes, Bytes>(txn, Some(&full)).map_err(|e| host_error(e.into()))?;
        let mut reg = store.plugin_tables();
        let handle = reg.handles.len() as u32;
        reg.handles.push(Some((full.clone(), table)));
        reg.by_name.insert(full.clone(), handle);
        drop(reg);
        self.batch.created_tables.push(full);
        Ok(handle)
    }

    fn get(&mut self, table: u32, key: &[u8]) -> Result<Option<&[u8]>, HostError> {
        let t = self.table(table)?;
        t.get(self.batch.txn(), key).map_err(|e| host_error(e.into()))
    }

    fn put(&mut self, table: u32, key: &[u8], value: &[u8]) -> Result<(), HostError> {
        let t = self.table(table)?;
        if key.is_empty() || key.len() > 511 {
            // LMDB's default key size limit.
            return Err(HostError::Invalid);
        }
        self.remember(t, key)?;
        let (_, txn) = self.batch.parts();
        t.put(txn, key, value).map_err(|e| host_error(e.into()))
    }

    fn delete(&mut self, table: u32, key: &[u8]) -> Result<bool, HostError> {
        let t = self.table(table)?;
        self.remember(t, key)?;
        let (_, txn) = self.batch.parts();
        t.delete(txn, key).map_err(|e| host_error(e.into()))
    }

    fn scan(
        &mut self,
        table: u32,
        start: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), HostError> {
        let t = self.table(table)?;
        let range = (std::ops::Bound::Included(start), std::ops::Bound::Unbounded);
        let iter = t.range(self.batch.txn(), &range).map_err(|e| host_error(e.into()))?;
        for item in iter {
            let (k, v) = item.map_err(|e| host_error(e.into()))?;
            if !visit(k, v) {
                break;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Store, StoreConfig};

    fn read(s: &Store, plugin: &str, table: &str, key: &[u8]) -> Option<Vec<u8>> {
        let mut b = s.batch().unwrap();
        let mut call = b.plugin_call(plugin);
        let h = call.open(table).unwrap();
        let v = call.get(h, key).unwrap().map(<[u8]>::to_vec);
        call.finish(true).unwrap();
        v
    }

    #[test]
    fn a_failed_call_is_rolled_back_alone_and_committed_calls_persist() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), StoreConfig::default()).unwrap();
        let mut b = s.batch().unwrap();
        let mut ok = b.plugin_call("org.x");
        let h = ok.open("accounts").unwrap();
        ok.put(h, b"alice", b"100").unwrap();
        ok.finish(true).unwrap();

        let mut bad = b.plugin_call("org.x");
        bad.put(h, b"alice", b"0").unwrap();
        bad.put(h, b"mallory", b"1000000").unwrap();
        assert!(bad.delete(h, b"alice").unwrap());
        bad.finish(false).unwrap();
        b.commit().unwrap();

        drop(s);
        let s = Store::open(dir.path(), StoreConfig::default()).unwrap();
        assert_eq!(read(&s, "org.x", "accounts", b"alice"), Some(b"100".to_vec()));
        assert_eq!(read(&s, "org.x", "accounts", b"mallory"), None);
    }

    #[test]
    fn tables_are_private_to_their_plugin_and_scans_are_ordered() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), StoreConfig::default()).unwrap();
        let mut b = s.batch().unwrap();
        let mut a = b.plugin_call("org.a");
        let h = a.open("t").unwrap();
        for k in [b"c", b"a", b"b"] {
            a.put(h, k, k).unwrap();
        }
        let mut seen = Vec::new();
        a.scan(h, b"b", &mut |k, _| {
            seen.push(k.to_vec());
            true
        })
        .unwrap();
        assert_eq!(seen, vec![b"b".to_vec(), b"c".to_vec()]);
        assert_eq!(a.open("bad name"), Err(HostError::Invalid));
        a.finish(true).unwrap();
        let mut other = b.plugin_call("org.b");
        assert_eq!(other.get(h, b"a"), Err(HostError::Invalid), "org.b must not read org.a's table");
        other.finish(true).unwrap();
    }

    #[test]
    fn tables_created_in_an_aborted_batch_are_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), StoreConfig::default()).unwrap();
        {
            let mut b = s.batch().unwrap();
            let mut c = b.plugin_call("org.x");
            let h = c.open("t").unwrap();
            c.put(h, b"k", b"v").unwrap();
            c.finish(true).unwrap();
            // dropped: aborted
        }
        assert_eq!(read(&s, "org.x", "t", b"k"), None);
    }
}
