//! A simulated disk for redb, for the deterministic simulator's crash tests.
//!
//! Why it exists: the guarantee a bank server gives is "an acknowledged commit survives power
//! loss". That rests entirely on redb's use of `sync_data`, so the simulator needs a disk that
//! loses exactly what a real one may lose — everything written since the last sync, in any
//! combination, including half-written multi-sector writes — and nothing that was synced.
//! Real files cannot do this deterministically; this can, because every crash decision comes
//! from one seeded RNG and the state is a plain byte vector plus an ordered list of operations.
//!
//! Why backends die with their incarnation: in the simulator a "crash" kills the server's tasks,
//! but the `redb::Database` it owned is an ordinary Rust value that may be dropped later — and
//! redb writes its shutdown header and syncs on close. A real process that lost power can never
//! write again, so if that zombie handle could reach the disk it would scribble over the
//! restarted server's file, and the simulator would report corruption that cannot happen (or
//! mask corruption that can). Hence a backend is bound to the incarnation it was created in and,
//! once the disk has crashed, fails every call without touching the disk.
//!
//! Why tears are sector-granular: a write that was in flight at power loss may land only
//! partially, but drives write whole 512-byte sectors atomically (and redb's 320-byte header fits
//! in one, so a header write is itself all-or-nothing), so tears are modelled as a prefix or an
//! arbitrary subset of the sectors a write covers, never a torn sector. This is realism, not a
//! crutch for redb: with `SECTOR` set to 1 (arbitrary byte subsets of every pending write, the
//! header included) the crash test below also passed 3000 seeds, thanks to redb's checksummed
//! commit slots and B-tree pages.
//!
//! For users: power lost while redb *creates* a database leaves a sized file without redb's magic
//! number, which redb then refuses to open; see `open_db` in the tests for the safe remedy.
//!
//! Error type: without redb's `experimental-api-5` feature the backend's I/O error type is plain
//! `std::io::Error`; every failure here is an `io::Error`.

use std::fmt;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Sector size: the unit a torn write is cut into.
const SECTOR: u64 = 512;

/// Shared handle to one simulated disk; survives "crashes" of the process that uses it.
#[derive(Clone, Debug)]
pub struct SimDisk {
    state: Arc<Mutex<State>>,
}

/// A redb storage backend bound to one incarnation of a [`SimDisk`]. Once the disk crashes, it
/// is dead: every call returns an error and leaves the disk untouched.
#[derive(Debug)]
pub struct SimBackend {
    disk: SimDisk,
    incarnation: u64,
}

/// What one crash did to the writes that were pending (not yet synced). `set_len` operations
/// are not counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CrashReport {
    pub dropped: u64,
    pub applied: u64,
    pub torn: u64,
}

/// Lifetime counters of a disk. `writes` counts writes accepted from live backends (including
/// a write that triggered a crash via [`SimDisk::crash_after_writes`]); `syncs` counts successful
/// `sync_data` calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiskStats {
    pub writes: u64,
    pub syncs: u64,
    pub crashes: u64,
    pub dropped_writes: u64,
    pub torn_writes: u64,
}

enum PendingOp {
    Write { offset: u64, data: Vec<u8> },
    SetLen(u64),
}

struct State {
    /// What survives a crash.
    durable: Vec<u8>,
    /// Unsynced operations since the last `sync_data`, in issue order.
    pending: Vec<PendingOp>,
    /// `durable` with `pending` applied: what reads see (the OS page cache).
    view: Vec<u8>,
    incarnation: u64,
    rng: ChaCha8Rng,
    stats: DiskStats,
    /// Armed by `crash_after_writes`: the write that brings it to zero crashes.
    crash_countdown: Option<u64>,
    /// Armed by `crash_after_syncs`: the sync that brings it to zero crashes.
    sync_crash_countdown: Option<u64>,
}

impl fmt::Debug for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("State")
            .field("durable_len", &self.durable.len())
            .field("view_len", &self.view.len())
            .field("pending_ops", &self.pending.len())
            .field("incarnation", &self.incarnation)
            .field("stats", &self.stats)
            .field("crash_countdown", &self.crash_countdown)
            .field("sync_crash_countdown", &self.sync_crash_countdown)
            .finish()
    }
}

fn apply_write(buf: &mut Vec<u8>, offset: u64, data: &[u8]) {
    let start = usize::try_from(offset).expect("offset fits in memory");
    let end = start + data.len();
    if buf.len() < end {
        // Like pwrite past EOF: the file grows, the gap reads as zeros.
        buf.resize(end, 0);
    }
    buf[start..end].copy_from_slice(data);
}

fn apply_set_len(buf: &mut Vec<u8>, len: u64) {
    buf.resize(usize::try_from(len).expect("length fits in memory"), 0);
}

/// Splits `[offset, offset + len)` at absolute sector boundaries; returns (start, end) pairs
/// relative to `offset`.
fn sector_chunks(offset: u64, len: usize) -> Vec<(usize, usize)> {
    let mut chunks = Vec::new();
    let end = offset + len as u64;
    let mut pos = offset;
    while pos < end {
        let boundary = ((pos / SECTOR) + 1) * SECTOR;
        let next = boundary.min(end);
        chunks.push(((pos - offset) as usize, (next - offset) as usize));
        pos = next;
    }
    chunks
}

impl State {
    fn crash(&mut self) -> CrashReport {
        let mut report = CrashReport::default();
        let pending = std::mem::take(&mut self.pending);
        for op in pending {
            match op {
                PendingOp::SetLen(len) => {
                    if self.rng.random_bool(0.5) {
                        apply_set_len(&mut self.durable, len);
                    }
                }
                PendingOp::Write { offset, data } => {
                    let chunks = sector_chunks(offset, data.len());
                    // A write within one sector is atomic: it cannot tear.
                    let outcome = if chunks.len() <= 1 {
                        self.rng.random_range(0..2u8)
                    } else {
                        self.rng.random_range(0..3u8)
                    };
                    match outcome {
                        0 => report.dropped += 1,
                        1 => {
                            apply_write(&mut self.durable, offset, &data);
                            report.applied += 1;
                        }
                        _ => {
                            let n = chunks.len();
                            let mut keep = vec![false; n];
                            if self.rng.random_bool(0.5) {
                                // The drive got through the first k sectors.
                                let k = self.rng.random_range(1..n);
                                keep[..k].iter_mut().for_each(|b| *b = true);
                            } else {
                                // Reordered sector writes: any proper, non-empty subset.
                                for b in keep.iter_mut() {
                                    *b = self.rng.random_bool(0.5);
                                }
                                if keep.iter().all(|&b| b) || keep.iter().all(|&b| !b) {
                                    let i = self.rng.random_range(0..n);
                                    keep[i] = !keep[i];
                                }
                            }
                            for (&(s, e), _) in chunks.iter().zip(&keep).filter(|(_, &k)| k) {
                                apply_write(&mut self.durable, offset + s as u64, &data[s..e]);
                            }
                            report.torn += 1;
                        }
                    }
                }
            }
        }
        self.view = self.durable.clone();
        self.incarnation += 1;
        self.crash_countdown = None;
        self.sync_crash_countdown = None;
        self.stats.crashes += 1;
        self.stats.dropped_writes += report.dropped;
        self.stats.torn_writes += report.torn;
        report
    }

    fn sync(&mut self) {
        for op in std::mem::take(&mut self.pending) {
            match op {
                PendingOp::Write { offset, data } => apply_write(&mut self.durable, offset, &data),
                PendingOp::SetLen(len) => apply_set_len(&mut self.durable, len),
            }
        }
        // Whole-image comparison: the simulator's own check, too costly outside debug builds.
        debug_assert!(self.durable == self.view);
        self.stats.syncs += 1;
    }
}

impl SimDisk {
    /// An empty disk whose crash decisions come from `ChaCha8Rng::seed_from_u64(seed)`.
    pub fn new(seed: u64) -> SimDisk {
        SimDisk {
            state: Arc::new(Mutex::new(State {
                durable: Vec::new(),
                pending: Vec::new(),
                view: Vec::new(),
                incarnation: 0,
                rng: ChaCha8Rng::seed_from_u64(seed),
                stats: DiskStats::default(),
                crash_countdown: None,
                sync_crash_countdown: None,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere must not make the disk unusable for the post-mortem.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A backend bound to the current incarnation.
    pub fn backend(&self) -> SimBackend {
        SimBackend {
            disk: self.clone(),
            incarnation: self.lock().incarnation,
        }
    }

    /// Power loss: every unsynced write is independently dropped, applied whole, or torn
    /// (sector-granular); every unsynced `set_len` is applied or not. All existing backends die.
    /// Also disarms [`Self::crash_after_writes`] and [`Self::crash_after_syncs`].
    pub fn crash(&self) -> CrashReport {
        self.lock().crash()
    }

    /// Arms a crash inside the `n`-th future write (`n >= 1`) issued by a live backend: that
    /// write is taken as in flight (so it may itself be dropped, applied or torn), the disk
    /// crashes as by [`Self::crash`], and the write returns an error, as does every later call
    /// on the now-dead backends. Replaces any previously armed trigger.
    pub fn crash_after_writes(&self, n: u64) {
        assert!(n >= 1, "crash_after_writes: n must be at least 1");
        self.lock().crash_countdown = Some(n);
    }

    /// Arms a crash inside the `n`-th future `sync_data` (`n >= 1`) issued by a live backend:
    /// power is lost while the flush is under way, so everything pending — typically a whole
    /// commit — is subject to the crash decisions, and the sync returns an error. Replaces any
    /// previously armed sync trigger; independent of [`Self::crash_after_writes`].
    pub fn crash_after_syncs(&self, n: u64) {
        assert!(n >= 1, "crash_after_syncs: n must be at least 1");
        self.lock().sync_crash_countdown = Some(n);
    }

    /// Erases the disk, durably: what a node does to a database whose creation was cut short
    /// by a power loss (redb refuses such a file; see `open_db` in the tests). Only safe while
    /// no open of this disk ever succeeded, since then it cannot hold a commit.
    pub fn wipe(&self) {
        let mut state = self.lock();
        state.pending.clear();
        state.durable.clear();
        state.view.clear();
    }

    /// A new disk holding exactly this one's durable state: what a bank would find after a
    /// crash now. The simulator reads a down bank's books from it without touching the disk
    /// the bank will restart on (opening a database writes to it).
    pub fn durable_copy(&self) -> SimDisk {
        let durable = self.lock().durable.clone();
        let copy = SimDisk::new(0);
        {
            let mut st = copy.lock();
            st.view = durable.clone();
            st.durable = durable;
        }
        copy
    }

    /// Length of the durable state (what would survive a crash now).
    pub fn durable_len(&self) -> u64 {
        self.lock().durable.len() as u64
    }

    pub fn stats(&self) -> DiskStats {
        self.lock().stats
    }
}

impl SimBackend {
    /// Locks the disk, failing if this backend's incarnation has crashed.
    fn live(&self) -> io::Result<MutexGuard<'_, State>> {
        let state = self.disk.lock();
        if state.incarnation != self.incarnation {
            return Err(io::Error::other(format!(
                "simulated disk: backend of incarnation {} is dead (disk is at incarnation {})",
                self.incarnation, state.incarnation
            )));
        }
        Ok(state)
    }
}

impl redb::StorageBackend for SimBackend {
    fn len(&self) -> Result<u64, io::Error> {
        Ok(self.live()?.view.len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        let state = self.live()?;
        let src = usize::try_from(offset)
            .ok()
            .and_then(|start| state.view.get(start..start.checked_add(out.len())?))
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "simulated disk: read of {} bytes at {offset} beyond length {}",
                        out.len(),
                        state.view.len()
                    ),
                )
            })?;
        out.copy_from_slice(src);
        Ok(())
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        let mut state = self.live()?;
        apply_set_len(&mut state.view, len);
        state.pending.push(PendingOp::SetLen(len));
        Ok(())
    }

    fn sync_data(&self) -> Result<(), io::Error> {
        let mut state = self.live()?;
        if let Some(left) = state.sync_crash_countdown.as_mut() {
            *left -= 1;
            if *left == 0 {
                state.crash();
                return Err(io::Error::other(
                    "simulated disk: power lost during this sync",
                ));
            }
        }
        state.sync();
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        let mut state = self.live()?;
        apply_write(&mut state.view, offset, data);
        state.pending.push(PendingOp::Write {
            offset,
            data: data.to_vec(),
        });
        state.stats.writes += 1;
        if let Some(left) = state.crash_countdown.as_mut() {
            *left -= 1;
            if *left == 0 {
                state.crash();
                return Err(io::Error::other(
                    "simulated disk: power lost during this write",
                ));
            }
        }
        Ok(())
    }

    fn close(&self) -> Result<(), io::Error> {
        let _live = self.live()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::{Database, ReadableDatabase, ReadableTable, StorageBackend, TableDefinition};

    fn durable_bytes(disk: &SimDisk) -> Vec<u8> {
        disk.lock().durable.clone()
    }

    fn read_all(b: &SimBackend) -> Vec<u8> {
        let mut out = vec![0; b.len().unwrap() as usize];
        b.read(0, &mut out).unwrap();
        out
    }

    #[test]
    fn reads_see_unsynced_writes_and_set_len() {
        let disk = SimDisk::new(1);
        let b = disk.backend();
        b.write(0, b"hello").unwrap();
        b.write(10, b"world").unwrap();
        assert_eq!(b.len().unwrap(), 15);
        assert_eq!(read_all(&b), b"hello\0\0\0\0\0world");
        b.set_len(3).unwrap();
        assert_eq!(read_all(&b), b"hel");
        b.set_len(6).unwrap();
        assert_eq!(read_all(&b), b"hel\0\0\0");
        let mut buf = [0u8; 4];
        assert!(b.read(4, &mut buf).is_err(), "read past the end must fail");
        assert_eq!(disk.durable_len(), 0, "nothing is durable before a sync");
    }

    #[test]
    fn sync_makes_durable_and_crash_keeps_it() {
        let disk = SimDisk::new(2);
        let b = disk.backend();
        b.write(0, &[7u8; 3000]).unwrap();
        b.set_len(4096).unwrap();
        b.sync_data().unwrap();
        assert_eq!(disk.durable_len(), 4096);
        let synced = durable_bytes(&disk);
        for _ in 0..20 {
            let b = disk.backend();
            assert_eq!(read_all(&b), synced);
            // Nothing pending: a crash changes nothing.
            assert_eq!(disk.crash(), CrashReport::default());
            assert_eq!(durable_bytes(&disk), synced);
        }
        assert_eq!(disk.stats().crashes, 20);
        assert_eq!(disk.stats().syncs, 1);
    }

    #[test]
    fn crash_only_affects_unsynced_writes_sector_by_sector() {
        let mut outcomes = CrashReport::default();
        for seed in 0..200 {
            let disk = SimDisk::new(seed);
            let b = disk.backend();
            b.write(0, &[1u8; 4096]).unwrap();
            b.sync_data().unwrap();
            // One unsynced 8-sector write over synced data, plus a sub-sector write past it.
            b.write(0, &[2u8; 4096]).unwrap();
            b.write(5000, &[3u8; 100]).unwrap();
            let report = disk.crash();
            assert_eq!(report.dropped + report.applied + report.torn, 2);
            outcomes.dropped += report.dropped;
            outcomes.applied += report.applied;
            outcomes.torn += report.torn;

            let d = durable_bytes(&disk);
            assert!(d.len() == 4096 || d.len() == 5100, "len {}", d.len());
            if d.len() == 5100 {
                assert!(d[4096..5000].iter().all(|&x| x == 0));
                assert!(
                    d[5000..].iter().all(|&x| x == 3),
                    "sub-sector write is atomic"
                );
            }
            // Every sector is wholly old or wholly new.
            let sectors: Vec<u8> = d[..4096]
                .chunks(512)
                .map(|s| {
                    assert!(s.iter().all(|&x| x == s[0]), "torn inside a sector");
                    assert!(s[0] == 1 || s[0] == 2);
                    s[0]
                })
                .collect();
            let new = sectors.iter().filter(|&&s| s == 2).count();
            let big_write_torn = new != 0 && new != 8;
            assert!(!big_write_torn || report.torn == 1);
        }
        assert!(outcomes.dropped > 0 && outcomes.applied > 0 && outcomes.torn > 0);
    }

    #[test]
    fn crash_drops_or_applies_unsynced_set_len() {
        let (mut grew, mut kept) = (false, false);
        for seed in 0..64 {
            let disk = SimDisk::new(seed);
            let b = disk.backend();
            b.set_len(100).unwrap();
            disk.crash();
            match disk.durable_len() {
                100 => grew = true,
                0 => kept = true,
                n => panic!("unexpected length {n}"),
            }
        }
        assert!(grew && kept);
    }

    #[test]
    fn dead_backend_fails_everything_and_never_writes() {
        let disk = SimDisk::new(3);
        let old = disk.backend();
        old.write(0, &[1u8; 1024]).unwrap();
        old.sync_data().unwrap();
        disk.crash();
        let before = durable_bytes(&disk);
        let stats = disk.stats();
        let mut buf = [0u8; 8];
        assert!(old.len().is_err());
        assert!(old.read(0, &mut buf).is_err());
        assert!(old.write(0, &[9u8; 1024]).is_err());
        assert!(old.set_len(0).is_err());
        assert!(old.sync_data().is_err());
        assert!(old.close().is_err());
        assert_eq!(durable_bytes(&disk), before);
        assert_eq!(disk.stats(), stats);
        // A fresh backend sees the synced data and works.
        let new = disk.backend();
        assert_eq!(read_all(&new), before);
        new.write(0, &[5u8; 10]).unwrap();
        // ... and the old one still cannot touch it.
        assert!(old.write(0, &[9u8; 10]).is_err());
        assert_eq!(read_all(&new)[..10], [5u8; 10]);
    }

    #[test]
    fn crash_after_writes_triggers_inside_the_nth_write() {
        let disk = SimDisk::new(4);
        let b = disk.backend();
        disk.crash_after_writes(3);
        b.write(0, &[1u8; 512]).unwrap();
        b.sync_data().unwrap();
        b.write(512, &[2u8; 512]).unwrap();
        assert_eq!(disk.stats().crashes, 0);
        assert!(b.write(1024, &[3u8; 512]).is_err());
        assert_eq!(disk.stats().crashes, 1);
        assert_eq!(disk.stats().writes, 3);
        let before = durable_bytes(&disk);
        assert!(before.len() >= 512 && before[..512] == [1u8; 512]);
        assert!(b.write(0, &[4u8; 512]).is_err());
        assert!(b.sync_data().is_err());
        assert_eq!(durable_bytes(&disk), before);
        // The trigger is spent: a new incarnation writes freely.
        let b2 = disk.backend();
        for i in 0..10 {
            b2.write(i * 512, &[5u8; 512]).unwrap();
        }
        assert_eq!(disk.stats().crashes, 1);
    }

    #[test]
    fn crash_after_syncs_crashes_instead_of_syncing() {
        let disk = SimDisk::new(5);
        let b = disk.backend();
        disk.crash_after_syncs(2);
        b.write(0, &[1u8; 512]).unwrap();
        b.sync_data().unwrap();
        b.write(512, &[2u8; 4096]).unwrap();
        assert!(b.sync_data().is_err());
        let s = disk.stats();
        assert_eq!((s.syncs, s.crashes, s.writes), (1, 1, 2));
        assert_eq!(durable_bytes(&disk)[..512], [1u8; 512]);
        assert!(b.read(0, &mut [0u8; 1]).is_err());
        disk.backend().sync_data().unwrap();
    }

    #[test]
    fn same_seed_same_crash() {
        let run = |seed| {
            let disk = SimDisk::new(seed);
            let b = disk.backend();
            for i in 0..50u64 {
                b.write(i * 700, &[i as u8; 1500]).unwrap();
            }
            (disk.crash(), durable_bytes(&disk))
        };
        assert_eq!(run(9), run(9));
        assert_ne!(run(9).1, run(10).1);
    }

    const TABLE: TableDefinition<u64, &[u8]> = TableDefinition::new("t");

    fn value_for(key: u64, len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (key.wrapping_mul(31).wrapping_add(i as u64 * 7) % 251) as u8)
            .collect()
    }

    #[derive(Debug, Default)]
    struct Tally {
        lives: u64,
        crash_in_commit_write: u64,
        crash_in_commit_sync: u64,
        crash_in_open: u64,
        crash_between_commits: u64,
        half_created: u64,
        in_flight_survived: u64,
        in_flight_lost: u64,
        acked: u64,
        verifications: u64,
    }

    /// Opens (creating if empty) the database on `disk`. Power lost while redb was creating the
    /// database leaves a file that is sized but lacks the magic number (redb writes it last,
    /// after a sync), which redb rejects as "not a redb database". Such a file cannot hold a
    /// commit, so as long as no open ever succeeded (`created`), it is wiped and created afresh.
    /// The node's startup must do the same.
    fn open_db(
        disk: &SimDisk,
        created: &mut bool,
        tally: &mut Tally,
    ) -> Result<Database, redb::DatabaseError> {
        let db = match Database::builder().create_with_backend(disk.backend()) {
            Err(redb::DatabaseError::Storage(redb::StorageError::Io(e)))
                if !*created && e.kind() == io::ErrorKind::InvalidData =>
            {
                tally.half_created += 1;
                let wipe = |b: SimBackend| b.set_len(0).and_then(|()| b.sync_data());
                wipe(disk.backend())
                    .map_err(|e| redb::DatabaseError::Storage(redb::StorageError::Io(e)))?;
                Database::builder().create_with_backend(disk.backend())?
            }
            other => other?,
        };
        *created = true;
        Ok(db)
    }

    /// Per iteration: one to four "lives" of a redb database on one disk. Each life opens the
    /// database (repairing it if the previous life crashed), commits up to 25 single-key write
    /// transactions and ends in power loss — usually armed to strike inside the n-th write or
    /// sync, i.e. inside a commit or an open-time repair. After some lives and always at the
    /// end, a clean open must show every acknowledged key with its value, and nothing else but
    /// (possibly) the commits that were in flight at a crash.
    #[test]
    fn redb_survives_crashes_mid_commit() {
        // SIMDISK_CRASH_SEEDS=n soaks with more seeds; the default keeps `cargo test` fast.
        let iterations: u64 = std::env::var("SIMDISK_CRASH_SEEDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(200);
        let started = std::time::Instant::now();
        let mut tally = Tally::default();
        let mut totals = DiskStats::default();

        for seed in 0..iterations {
            let disk = SimDisk::new(seed);
            let mut rng = ChaCha8Rng::seed_from_u64(!seed);
            // (key, value length) of acknowledged commits; the value is derived from both.
            let mut acked: Vec<(u64, usize)> = Vec::new();
            // Commits that were in flight at a crash not yet followed by a verification.
            let mut maybe: Vec<(u64, usize)> = Vec::new();
            let mut next_key = 0u64;
            // Whether an open has ever succeeded, i.e. redb's magic number is durable.
            let mut created = false;

            let lives = rng.random_range(1..=4);
            for life in 0..lives {
                tally.lives += 1;
                // Writes per commit are ~4-8 and there is one sync per commit, so these land
                // anywhere from the open to past the last commit.
                let trigger = rng.random_range(0..100);
                if trigger < 60 {
                    disk.crash_after_writes(rng.random_range(1..=80));
                } else if trigger < 85 {
                    disk.crash_after_syncs(rng.random_range(1..=20));
                }
                let two_phase = rng.random_bool(0.25);
                let quick_repair = rng.random_bool(0.25);
                let crashes_before = disk.stats().crashes;
                let crashed = |d: &SimDisk| d.stats().crashes > crashes_before;

                let db = match open_db(&disk, &mut created, &mut tally) {
                    Ok(db) => Some(db),
                    Err(e) => {
                        assert!(
                            crashed(&disk),
                            "seed {seed}: open failed without a crash: {e}"
                        );
                        tally.crash_in_open += 1;
                        None
                    }
                };
                if let Some(db) = &db {
                    for _ in 0..rng.random_range(1..=25) {
                        let key = next_key;
                        next_key += 1;
                        let len = if rng.random_bool(0.2) {
                            rng.random_range(1000..9000)
                        } else {
                            rng.random_range(1..300)
                        };
                        let result = (|| -> Result<(), redb::Error> {
                            let mut tx = db.begin_write()?;
                            tx.set_two_phase_commit(two_phase);
                            tx.set_quick_repair(quick_repair);
                            {
                                let mut t = tx.open_table(TABLE)?;
                                t.insert(key, value_for(key, len).as_slice())?;
                            }
                            tx.commit()?;
                            Ok(())
                        })();
                        match result {
                            Ok(()) => acked.push((key, len)),
                            Err(e) => {
                                assert!(crashed(&disk), "seed {seed}: commit failed: {e}");
                                if trigger < 60 {
                                    tally.crash_in_commit_write += 1;
                                } else {
                                    tally.crash_in_commit_sync += 1;
                                }
                                maybe.push((key, len));
                                break;
                            }
                        }
                    }
                }
                if !crashed(&disk) {
                    tally.crash_between_commits += 1;
                    disk.crash();
                }
                // The zombie Database is dropped only now, after the crash; its close tries to
                // write, and must not reach the disk.
                let frozen = durable_bytes(&disk);
                drop(db);
                assert_eq!(
                    durable_bytes(&disk),
                    frozen,
                    "seed {seed}: dead backend wrote"
                );

                if life + 1 < lives && rng.random_bool(0.5) {
                    continue; // the next life's (armed) open does the repair
                }
                tally.verifications += 1;
                let db = open_db(&disk, &mut created, &mut tally)
                    .unwrap_or_else(|e| panic!("seed {seed}: reopen failed: {e}"));
                let rtx = db.begin_read().unwrap();
                let mut found: Vec<(u64, Vec<u8>)> = Vec::new();
                match rtx.open_table(TABLE) {
                    Ok(t) => {
                        for entry in t.iter().unwrap() {
                            let (k, v) = entry.unwrap();
                            found.push((k.value(), v.value().to_vec()));
                        }
                    }
                    Err(redb::TableError::TableDoesNotExist(_)) => {}
                    Err(e) => panic!("seed {seed}: {e}"),
                }
                for m in maybe.drain(..) {
                    if found.iter().any(|(k, _)| *k == m.0) {
                        tally.in_flight_survived += 1;
                        acked.push(m); // durable now: from here on it must stay
                    } else {
                        tally.in_flight_lost += 1;
                    }
                }
                acked.sort_unstable();
                let expected: Vec<(u64, Vec<u8>)> =
                    acked.iter().map(|&(k, l)| (k, value_for(k, l))).collect();
                assert_eq!(
                    found.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
                    expected.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
                    "seed {seed}: keys after recovery (expected = acknowledged)"
                );
                assert!(found == expected, "seed {seed}: values after recovery");
            }
            tally.acked += acked.len() as u64;
            let s = disk.stats();
            totals.writes += s.writes;
            totals.syncs += s.syncs;
            totals.crashes += s.crashes;
            totals.dropped_writes += s.dropped_writes;
            totals.torn_writes += s.torn_writes;
        }
        eprintln!(
            "{iterations} iterations in {:?}\n{tally:?}\n{totals:?}",
            started.elapsed()
        );
        assert!(tally.crash_in_commit_write > iterations / 4);
        assert!(tally.crash_in_commit_sync > iterations / 10);
        assert!(tally.in_flight_survived > 0 && tally.in_flight_lost > 0);
    }
}
