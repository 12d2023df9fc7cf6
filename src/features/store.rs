//! The memory-mapped feature store: `MAX_MEMORY_MAPPED_POSITIONS` slots (default 1000) of
//! `FEATURE_DIMENSION` `f32` (default 32) in one file of the data directory, read without copying and
//! still valid after a restart.
//!
//! Why this module exists: the feature vector a position was opened on (and updated with) must outlive the
//! process, so a restarted engine can keep monitoring and learning from the same numbers, and readers
//! (the ML batcher) should not copy 128 bytes per position per cycle. A fixed-size file mapped with
//! `memmap2` gives both: a write is a store into the page cache, a read is a borrowed `&[f32]`, and the OS
//! writes pages back (or [`FeatureStore::flush`] forces it). `ENABLE_MEMORY_MAPPED_STORAGE=false` keeps the
//! same layout in process memory, so behaviour is identical except that nothing survives a restart.
//!
//! File layout (host byte order for the `f32` data; the header records it):
//!
//! ```text
//! header, 64 bytes: magic "PDFSTORE" | version u32 | byte-order mark u32 (0x01020304 as written)
//!                   | slots u32 | dim u32 | schema hash u64 | zero padding
//! slot table, slots × 32 bytes: flags u32 (bit 0 active, bit 1 ever used) | reserved u32 | key u64
//!                   | stamp u64 (sequence number of the last allocate or release) | reserved u64
//! data, slots × dim × f32
//! ```
//!
//! A file whose header or length disagrees with the configuration (another dimension, slot count, schema
//! hash, version, byte order) is **refused**, not rotated: [`StoreError::HeaderMismatch`] names the file,
//! the field and both values, so the operator decides whether to delete it or restore the setting. Slots
//! are allocated never-used first, then by reusing the inactive slot released longest ago (smallest
//! stamp); when every slot is active, [`StoreError::Full`]. Allocation scans the 32-byte slot table
//! (32 KB at 1000 slots); reads and writes are O(dim) and allocate nothing.
//!
//! Unsafe code: mapping a file (`MmapMut::map_mut`) is `unsafe` because another process could truncate
//! or modify it under us, and viewing the mapped bytes as `f32` needs a reinterpreting cast
//! (`align_to`). Both are confined to this module's two small functions [`map_file`] and the
//! `floats`/`floats_mut` pair, each with its `SAFETY:` argument; the workspace lint is `deny` rather than
//! `forbid` so that this module alone can allow it.
#![allow(unsafe_code)]

use std::{
    fs::{File, OpenOptions},
    path::{Path, PathBuf},
};

use memmap2::MmapMut;

/// File name of the store in the data directory.
pub const STORE_FILE_NAME: &str = "features.store";

const MAGIC: [u8; 8] = *b"PDFSTORE";
const VERSION: u32 = 1;
const BYTE_ORDER_MARK: u32 = 0x0102_0304;
const HEADER_LEN: usize = 64;
const META_LEN: usize = 32;
const ACTIVE: u32 = 1;
const USED: u32 = 2;

/// Index of a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SlotId(pub u32);

impl SlotId {
    fn index(self) -> usize {
        self.0 as usize
    }
}

/// Failures of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("feature store {path}: {operation}: {source}")]
    Io {
        path: PathBuf,
        operation: &'static str,
        source: std::io::Error,
    },
    #[error(
        "feature store {path} was written with {field} = {found}, but this configuration needs {expected}: \
         move or delete the file, or restore the setting it was written with"
    )]
    HeaderMismatch {
        path: PathBuf,
        field: &'static str,
        expected: String,
        found: String,
    },
    #[error("feature store {path} is {found} bytes long, expected {expected} (truncated or foreign file)")]
    WrongLength {
        path: PathBuf,
        expected: u64,
        found: u64,
    },
    #[error("feature store needs at least one slot and one feature, got {slots} slots × {dim}")]
    EmptyLayout { slots: usize, dim: usize },
    #[error("feature store layout {slots} slots × {dim} features is too large")]
    TooLarge { slots: usize, dim: usize },
    #[error("every one of the {slots} feature store slots is active: release one first")]
    Full { slots: usize },
    #[error("slot {slot} does not exist (the store has {slots} slots)")]
    NoSuchSlot { slot: u32, slots: usize },
    #[error("slot {slot} is not active (allocate it first)")]
    Inactive { slot: u32 },
    #[error("slot {slot} holds {dim} features, got {len}")]
    WrongDimension { slot: u32, dim: usize, len: usize },
    #[error("the mapped feature data is not aligned for f32")]
    Misaligned,
}

/// Metadata of one slot, decoded from the slot table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotInfo {
    pub key: u64,
    pub active: bool,
    /// Sequence number of the last allocate or release.
    pub stamp: u64,
}

#[derive(Debug)]
enum Backing {
    /// Header, slot table and data in one mapping.
    Mapped { path: PathBuf, map: MmapMut },
    /// The slot table and the data in memory.
    Memory { table: Vec<u8>, data: Vec<f32> },
}

/// Fixed-size slots of feature vectors; see the module documentation.
#[derive(Debug)]
pub struct FeatureStore {
    backing: Backing,
    slots: usize,
    dim: usize,
    next_stamp: u64,
}

/// Maps `file` read-write.
fn map_file(file: &File, path: &Path) -> Result<MmapMut, StoreError> {
    // SAFETY: the file is perpdesk's own store in its data directory and stays open for the mapping's
    // lifetime; nothing in perpdesk truncates or writes it other than through this mapping. Another process
    // doing so would be undefined behaviour, the caveat every memory-mapped file carries.
    unsafe { MmapMut::map_mut(file) }.map_err(|source| StoreError::Io {
        path: path.to_path_buf(),
        operation: "map",
        source,
    })
}

fn floats(bytes: &[u8]) -> Result<&[f32], StoreError> {
    // SAFETY: every bit pattern is a valid `f32`, and `align_to` puts in the middle part only the bytes that
    // are correctly aligned for it; we refuse the view unless that middle part is all of `bytes`.
    let (head, middle, tail) = unsafe { bytes.align_to::<f32>() };
    if head.is_empty() && tail.is_empty() {
        Ok(middle)
    } else {
        Err(StoreError::Misaligned)
    }
}

fn floats_mut(bytes: &mut [u8]) -> Result<&mut [f32], StoreError> {
    // SAFETY: as in `floats`; any `f32` written through the view is a valid byte pattern too.
    let (head, middle, tail) = unsafe { bytes.align_to_mut::<f32>() };
    if head.is_empty() && tail.is_empty() {
        Ok(middle)
    } else {
        Err(StoreError::Misaligned)
    }
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_ne_bytes(word)
}

fn read_u64(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_ne_bytes(word)
}

fn header(slots: usize, dim: usize, schema_hash: u64) -> [u8; HEADER_LEN] {
    let mut header = [0; HEADER_LEN];
    header[0..8].copy_from_slice(&MAGIC);
    header[8..12].copy_from_slice(&VERSION.to_ne_bytes());
    header[12..16].copy_from_slice(&BYTE_ORDER_MARK.to_ne_bytes());
    header[16..20].copy_from_slice(&(slots as u32).to_ne_bytes());
    header[20..24].copy_from_slice(&(dim as u32).to_ne_bytes());
    header[24..32].copy_from_slice(&schema_hash.to_ne_bytes());
    header
}

impl FeatureStore {
    /// Opens (or creates) the store at `path` with `slots` × `dim` features described by `schema_hash`; with
    /// `memory_mapped = false` the path is ignored and the store lives in memory.
    pub fn open(
        path: &Path,
        slots: usize,
        dim: usize,
        schema_hash: u64,
        memory_mapped: bool,
    ) -> Result<Self, StoreError> {
        if slots == 0 || dim == 0 {
            return Err(StoreError::EmptyLayout { slots, dim });
        }
        let too_large = StoreError::TooLarge { slots, dim };
        let (Ok(slots_u32), Ok(dim_u32)) = (u32::try_from(slots), u32::try_from(dim)) else {
            return Err(too_large);
        };
        let Some(total) = slots
            .checked_mul(dim)
            .and_then(|floats| floats.checked_mul(4))
            .and_then(|data| data.checked_add(slots * META_LEN + HEADER_LEN))
        else {
            return Err(too_large);
        };
        if !memory_mapped {
            return Ok(Self {
                backing: Backing::Memory {
                    table: vec![0; slots * META_LEN],
                    data: vec![0.0; slots * dim],
                },
                slots,
                dim,
                next_stamp: 1,
            });
        }
        let io = |operation| {
            move |source| StoreError::Io {
                path: path.to_path_buf(),
                operation,
                source,
            }
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io("open"))?;
        let length = file.metadata().map_err(io("stat"))?.len();
        let fresh = length == 0;
        if fresh {
            file.set_len(total as u64).map_err(io("resize"))?;
        } else if length < HEADER_LEN as u64 {
            return Err(StoreError::WrongLength {
                path: path.to_path_buf(),
                expected: total as u64,
                found: length,
            });
        }
        let mut map = map_file(&file, path)?;
        let expected = header(slots, dim, schema_hash);
        if fresh {
            map[..HEADER_LEN].copy_from_slice(&expected);
        } else {
            check_header(path, &map[..HEADER_LEN], slots_u32, dim_u32, schema_hash)?;
            if length != total as u64 {
                return Err(StoreError::WrongLength {
                    path: path.to_path_buf(),
                    expected: total as u64,
                    found: length,
                });
            }
        }
        floats(&map[HEADER_LEN + slots * META_LEN..])?;
        let mut store = Self {
            backing: Backing::Mapped {
                path: path.to_path_buf(),
                map,
            },
            slots,
            dim,
            next_stamp: 1,
        };
        store.next_stamp = (0..slots)
            .map(|index| store.info_at(index).stamp)
            .max()
            .unwrap_or(0)
            + 1;
        Ok(store)
    }

    /// Opens `<data_dir>/features.store` with the configured layout and the schema hash of `dim`.
    pub fn open_in(
        data_dir: &Path,
        slots: usize,
        dim: usize,
        memory_mapped: bool,
    ) -> Result<Self, StoreError> {
        let hash = super::schema_hash(dim);
        Self::open(&data_dir.join(STORE_FILE_NAME), slots, dim, hash, memory_mapped)
    }

    pub const fn slots(&self) -> usize {
        self.slots
    }

    pub const fn dim(&self) -> usize {
        self.dim
    }

    pub const fn is_memory_mapped(&self) -> bool {
        matches!(self.backing, Backing::Mapped { .. })
    }

    fn table(&self) -> &[u8] {
        match &self.backing {
            Backing::Mapped { map, .. } => &map[HEADER_LEN..HEADER_LEN + self.slots * META_LEN],
            Backing::Memory { table, .. } => table,
        }
    }

    fn table_mut(&mut self) -> &mut [u8] {
        let end = HEADER_LEN + self.slots * META_LEN;
        match &mut self.backing {
            Backing::Mapped { map, .. } => &mut map[HEADER_LEN..end],
            Backing::Memory { table, .. } => table,
        }
    }

    fn data(&self) -> Result<&[f32], StoreError> {
        match &self.backing {
            Backing::Mapped { map, .. } => floats(&map[HEADER_LEN + self.slots * META_LEN..]),
            Backing::Memory { data, .. } => Ok(data),
        }
    }

    fn data_mut(&mut self) -> Result<&mut [f32], StoreError> {
        let start = HEADER_LEN + self.slots * META_LEN;
        match &mut self.backing {
            Backing::Mapped { map, .. } => floats_mut(&mut map[start..]),
            Backing::Memory { data, .. } => Ok(data),
        }
    }

    fn info_at(&self, index: usize) -> SlotInfo {
        let meta = &self.table()[index * META_LEN..(index + 1) * META_LEN];
        SlotInfo {
            key: read_u64(meta, 8),
            active: read_u32(meta, 0) & ACTIVE != 0,
            stamp: read_u64(meta, 16),
        }
    }

    fn set_meta(&mut self, index: usize, flags: u32, key: u64, stamp: u64) {
        let meta = &mut self.table_mut()[index * META_LEN..(index + 1) * META_LEN];
        meta[0..4].copy_from_slice(&flags.to_ne_bytes());
        meta[8..16].copy_from_slice(&key.to_ne_bytes());
        meta[16..24].copy_from_slice(&stamp.to_ne_bytes());
    }

    fn check_slot(&self, slot: SlotId) -> Result<usize, StoreError> {
        let index = slot.index();
        if index >= self.slots {
            return Err(StoreError::NoSuchSlot {
                slot: slot.0,
                slots: self.slots,
            });
        }
        if !self.info_at(index).active {
            return Err(StoreError::Inactive { slot: slot.0 });
        }
        Ok(index)
    }

    /// The metadata of `slot`.
    pub fn info(&self, slot: SlotId) -> Result<SlotInfo, StoreError> {
        let index = slot.index();
        if index >= self.slots {
            return Err(StoreError::NoSuchSlot {
                slot: slot.0,
                slots: self.slots,
            });
        }
        Ok(self.info_at(index))
    }

    /// The active slot holding `key`, if any.
    pub fn find(&self, key: u64) -> Option<SlotId> {
        (0..self.slots)
            .find(|&index| {
                let info = self.info_at(index);
                info.active && info.key == key
            })
            .map(|index| SlotId(index as u32))
    }

    /// A slot for `key`: its active slot if it has one, else a never-used slot, else the inactive slot
    /// released longest ago (its features are zeroed). [`StoreError::Full`] when every slot is active.
    pub fn allocate(&mut self, key: u64) -> Result<SlotId, StoreError> {
        let mut best: Option<(usize, u64)> = None;
        for index in 0..self.slots {
            let meta = &self.table()[index * META_LEN..(index + 1) * META_LEN];
            let flags = read_u32(meta, 0);
            if flags & ACTIVE != 0 {
                if read_u64(meta, 8) == key {
                    return Ok(SlotId(index as u32));
                }
                continue;
            }
            // Never-used slots rank before every released one.
            let rank = if flags & USED == 0 { 0 } else { read_u64(meta, 16) };
            if best.is_none_or(|(_, best_rank)| rank < best_rank) {
                best = Some((index, rank));
            }
        }
        let Some((index, _)) = best else {
            return Err(StoreError::Full { slots: self.slots });
        };
        let stamp = self.next_stamp;
        self.next_stamp += 1;
        self.set_meta(index, ACTIVE | USED, key, stamp);
        let dim = self.dim;
        self.data_mut()?[index * dim..(index + 1) * dim].fill(0.0);
        Ok(SlotId(index as u32))
    }

    /// Stores `features` (exactly `dim` values) in the active `slot`.
    pub fn write(&mut self, slot: SlotId, features: &[f32]) -> Result<(), StoreError> {
        let index = self.check_slot(slot)?;
        if features.len() != self.dim {
            return Err(StoreError::WrongDimension {
                slot: slot.0,
                dim: self.dim,
                len: features.len(),
            });
        }
        let dim = self.dim;
        self.data_mut()?[index * dim..(index + 1) * dim].copy_from_slice(features);
        Ok(())
    }

    /// The features of the active `slot`, borrowed from the mapping (no copy).
    pub fn read(&self, slot: SlotId) -> Result<&[f32], StoreError> {
        let index = self.check_slot(slot)?;
        let dim = self.dim;
        Ok(&self.data()?[index * dim..(index + 1) * dim])
    }

    /// Marks `slot` inactive; it keeps its data until it is reused.
    pub fn release(&mut self, slot: SlotId) -> Result<(), StoreError> {
        let index = self.check_slot(slot)?;
        let key = self.info_at(index).key;
        let stamp = self.next_stamp;
        self.next_stamp += 1;
        self.set_meta(index, USED, key, stamp);
        Ok(())
    }

    /// Writes dirty pages to the file (a no-op in memory).
    pub fn flush(&self) -> Result<(), StoreError> {
        match &self.backing {
            Backing::Mapped { path, map } => map.flush().map_err(|source| StoreError::Io {
                path: path.clone(),
                operation: "flush",
                source,
            }),
            Backing::Memory { .. } => Ok(()),
        }
    }
}

fn check_header(path: &Path, found: &[u8], slots: u32, dim: u32, schema_hash: u64) -> Result<(), StoreError> {
    let mismatch = |field, expected: String, found: String| StoreError::HeaderMismatch {
        path: path.to_path_buf(),
        field,
        expected,
        found,
    };
    if found[0..8] != MAGIC {
        return Err(mismatch(
            "magic",
            String::from_utf8_lossy(&MAGIC).into_owned(),
            String::from_utf8_lossy(&found[0..8]).into_owned(),
        ));
    }
    let checks: [(&'static str, u64, u64); 5] = [
        (
            "byte order mark",
            u64::from(BYTE_ORDER_MARK),
            u64::from(read_u32(found, 12)),
        ),
        ("version", u64::from(VERSION), u64::from(read_u32(found, 8))),
        (
            "slots (MAX_MEMORY_MAPPED_POSITIONS)",
            u64::from(slots),
            u64::from(read_u32(found, 16)),
        ),
        (
            "dimension (FEATURE_DIMENSION)",
            u64::from(dim),
            u64::from(read_u32(found, 20)),
        ),
        ("schema hash", schema_hash, read_u64(found, 24)),
    ];
    for (field, expected, actual) in checks {
        if expected != actual {
            let (expected, actual) = if field == "schema hash" || field == "byte order mark" {
                (format!("{expected:#018x}"), format!("{actual:#018x}"))
            } else {
                (expected.to_string(), actual.to_string())
            };
            return Err(mismatch(field, expected, actual));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{FeatureStore, SlotId, StoreError};

    const HASH: u64 = 0x1234_5678_9abc_def0;

    fn stores(dir: &std::path::Path, slots: usize, dim: usize) -> [FeatureStore; 2] {
        [
            FeatureStore::open(&dir.join("f.store"), slots, dim, HASH, true).expect("a fresh file opens"),
            FeatureStore::open(&dir.join("ignored"), slots, dim, HASH, false).expect("memory always opens"),
        ]
    }

    #[test]
    fn allocate_reuses_the_oldest_inactive_slot_and_refuses_when_full() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        for mut store in stores(dir.path(), 3, 4) {
            let a = store.allocate(10).expect("free slots");
            let b = store.allocate(11).expect("free slots");
            let c = store.allocate(12).expect("free slots");
            assert_eq!([a, b, c], [SlotId(0), SlotId(1), SlotId(2)]);
            assert_eq!(store.allocate(11).expect("already active"), b);
            assert!(matches!(store.allocate(13), Err(StoreError::Full { slots: 3 })));
            store.write(c, &[1.0, 2.0, 3.0, 4.0]).expect("active slot");
            store.release(c).expect("active slot");
            store.release(a).expect("active slot");
            assert!(matches!(store.read(a), Err(StoreError::Inactive { slot: 0 })));
            assert!(matches!(
                store.write(a, &[0.0; 4]),
                Err(StoreError::Inactive { slot: 0 })
            ));
            // c was released before a: it is the oldest inactive slot, reused and zeroed.
            assert_eq!(store.allocate(14).expect("an inactive slot"), c);
            assert_eq!(store.read(c).expect("active slot"), &[0.0; 4]);
            assert_eq!(store.allocate(15).expect("an inactive slot"), a);
            assert_eq!(store.find(15), Some(a));
            assert!(matches!(
                store.write(b, &[1.0]),
                Err(StoreError::WrongDimension {
                    slot: 1,
                    dim: 4,
                    len: 1
                })
            ));
            assert!(matches!(
                store.read(SlotId(3)),
                Err(StoreError::NoSuchSlot { slot: 3, slots: 3 })
            ));
        }
    }

    #[test]
    fn memory_and_mapped_stores_behave_the_same() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let [mut mapped, mut memory] = stores(dir.path(), 5, 3);
        let mut trace = Vec::new();
        for step in 0..40_u64 {
            let key = step % 9;
            let results = [&mut mapped, &mut memory].map(|store| match step % 4 {
                0..=2 => store.allocate(key).map(|slot| {
                    let values = [key as f32, step as f32, -1.5];
                    store.write(slot, &values).expect("a fresh allocation is active");
                    (slot, store.read(slot).expect("active").to_vec())
                }),
                _ => match store.find(key) {
                    Some(slot) => store.release(slot).map(|()| (slot, Vec::new())),
                    None => Err(StoreError::Full { slots: 0 }),
                },
            });
            let [a, b] = results.map(|result| format!("{result:?}"));
            assert_eq!(a, b);
            trace.push(a);
        }
        assert!(trace.iter().any(|line| line.contains("Full { slots: 5 }")));
        for index in 0..5 {
            assert_eq!(
                mapped.info(SlotId(index)).expect("slot exists"),
                memory.info(SlotId(index)).expect("slot exists")
            );
        }
    }

    #[test]
    fn store_survives_a_restart() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("features.store");
        let (kept, released, stamp) = {
            let mut store = FeatureStore::open(&path, 4, 3, HASH, true).expect("a fresh file opens");
            let kept = store.allocate(7).expect("free slots");
            let released = store.allocate(8).expect("free slots");
            store.write(kept, &[0.25, -3.0, f32::MAX]).expect("active slot");
            store.release(released).expect("active slot");
            store.flush().expect("flush works on a local file");
            (kept, released, store.info(released).expect("slot exists").stamp)
        };
        let mut store = FeatureStore::open(&path, 4, 3, HASH, true).expect("the same layout reopens");
        assert_eq!(store.read(kept).expect("still active"), &[0.25, -3.0, f32::MAX]);
        let info = store.info(kept).expect("slot exists");
        assert!(info.active && info.key == 7);
        assert!(!store.info(released).expect("slot exists").active);
        assert_eq!(store.find(7), Some(kept));
        // Stamps continue after the restart, so the released slot still ranks by its release time.
        let fresh = store.allocate(9).expect("free slots");
        assert!(store.info(fresh).expect("slot exists").stamp > stamp);
    }

    #[test]
    fn header_mismatch_names_the_file_and_the_field() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("features.store");
        drop(FeatureStore::open(&path, 4, 3, HASH, true).expect("a fresh file opens"));
        let error = FeatureStore::open(&path, 4, 5, HASH, true).expect_err("another dimension");
        assert_eq!(
            error.to_string(),
            format!(
                "feature store {} was written with dimension (FEATURE_DIMENSION) = 3, but this configuration \
                 needs 5: move or delete the file, or restore the setting it was written with",
                path.display()
            )
        );
        let error = FeatureStore::open(&path, 4, 3, HASH + 1, true).expect_err("another schema");
        assert!(matches!(
            error,
            StoreError::HeaderMismatch {
                field: "schema hash",
                ..
            }
        ));
        let error = FeatureStore::open(&path, 9, 3, HASH, true).expect_err("another slot count");
        assert!(matches!(
            error,
            StoreError::HeaderMismatch {
                field: "slots (MAX_MEMORY_MAPPED_POSITIONS)",
                ..
            }
        ));
        std::fs::write(&path, [b'x'; 64 + 4 * 32 + 4 * 12]).expect("overwrite the file");
        let error = FeatureStore::open(&path, 4, 3, HASH, true).expect_err("not a store");
        assert!(matches!(error, StoreError::HeaderMismatch { field: "magic", .. }));
        assert!(matches!(
            FeatureStore::open(&path, 0, 3, HASH, false),
            Err(StoreError::EmptyLayout { slots: 0, dim: 3 })
        ));
    }
}
