//! Password hashing with argon2id, producing PHC strings.

use std::fmt;
use std::sync::{Mutex, PoisonError};

use argon2::password_hash::{PasswordHash, PasswordHasher as _, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use security_core::{PasswordHashError, PasswordHasher};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq as _;
use zeroize::{Zeroize as _, Zeroizing};

use crate::error::CryptoError;
use crate::random::{generate_token, random_bytes};

/// The cost of argon2id.
///
/// The default is the OWASP Password Storage Cheat Sheet recommendation:
/// m = 19 MiB (19456 KiB), t = 2, p = 1, with a 32-byte output. Raise it
/// when your hardware allows; existing hashes are then reported by
/// [`PasswordHasher::needs_rehash`] and should be replaced at the next
/// successful login.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Argon2Config {
    /// Memory cost in KiB.
    pub memory_kib: u32,
    /// Number of passes over the memory.
    pub iterations: u32,
    /// Degree of parallelism (lanes).
    pub parallelism: u32,
    /// Hash length in bytes.
    pub output_len: usize,
    /// The largest memory cost (KiB) a stored hash may ask for at
    /// verification. A stored hash names its own parameters, so without
    /// this bound a planted hash could make one login allocate gigabytes.
    /// Default 256 MiB.
    pub max_verify_memory_kib: u32,
}

impl Argon2Config {
    /// The OWASP recommendation (m = 19456 KiB, t = 2, p = 1).
    pub const OWASP: Self = Self {
        memory_kib: 19 * 1024,
        iterations: 2,
        parallelism: 1,
        output_len: 32,
        max_verify_memory_kib: 256 * 1024,
    };

    /// The largest number of passes a stored hash may ask for.
    pub const MAX_VERIFY_ITERATIONS: u32 = 32;

    /// The largest parallelism a stored hash may ask for.
    pub const MAX_VERIFY_PARALLELISM: u32 = 16;

    fn params(&self) -> Result<Params, CryptoError> {
        if self.memory_kib > self.max_verify_memory_kib {
            return Err(CryptoError::InvalidParameters(
                "memory cost above max_verify_memory_kib",
            ));
        }
        if self.iterations > Self::MAX_VERIFY_ITERATIONS
            || self.parallelism > Self::MAX_VERIFY_PARALLELISM
        {
            return Err(CryptoError::InvalidParameters(
                "argon2 iterations or parallelism too large",
            ));
        }
        Params::new(
            self.memory_kib,
            self.iterations,
            self.parallelism,
            Some(self.output_len),
        )
        .map_err(|_| CryptoError::InvalidParameters("argon2 parameters out of range"))
    }
}

impl Default for Argon2Config {
    fn default() -> Self {
        Self::OWASP
    }
}

/// Pre-faulted argon2 working memory, shared by the threads that verify.
///
/// argon2id at the OWASP cost works through 19 MiB. Allocated afresh for
/// each verification, that memory comes back from the allocator sometimes
/// already mapped and sometimes as new pages that fault in one by one
/// (thousands of faults), depending on what ran before on the thread: a
/// difference an attacker can time, and one the unknown-username path hit
/// more often than the known-user path. Every verification, real or dummy,
/// borrows a buffer from here, already faulted in, so both cost the same.
///
/// A buffer is overwritten by the next hash that borrows it and wiped when
/// the pool is dropped.
struct BlockPool {
    idle: Mutex<Vec<Box<[Block]>>>,
    /// How many idle buffers are kept (more may exist while more threads
    /// verify at once; those are dropped after use).
    keep: usize,
}

impl BlockPool {
    /// A pool holding `keep` buffers of `blocks` blocks, faulted in now.
    fn new(blocks: usize, keep: usize) -> Self {
        let keep = keep.max(1);
        Self {
            idle: Mutex::new((0..keep).map(|_| Self::allocate(blocks)).collect()),
            keep,
        }
    }

    /// A buffer with every page written (so mapped).
    fn allocate(blocks: usize) -> Box<[Block]> {
        let mut buffer = vec![Block::default(); blocks].into_boxed_slice();
        for (i, block) in buffer.iter_mut().enumerate() {
            // Nonzero, so that no allocator or compiler shortcut for
            // zeroed memory can leave the page unmapped.
            if let Some(word) = block.as_mut().first_mut() {
                *word = u64::try_from(i).unwrap_or(u64::MAX) | 1;
            }
        }
        buffer
    }

    /// Runs `work` on at least `blocks` blocks of pooled memory.
    fn with_blocks<R>(&self, blocks: usize, work: impl FnOnce(&mut [Block]) -> R) -> R {
        let pooled = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let mut buffer = match pooled {
            Some(buffer) if buffer.len() >= blocks => buffer,
            _ => Self::allocate(blocks),
        };
        let result = work(&mut buffer);
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < self.keep {
            idle.push(buffer);
        } else {
            drop(idle);
            wipe(&mut buffer);
        }
        result
    }
}

fn wipe(buffer: &mut [Block]) {
    for block in buffer {
        block.zeroize();
    }
}

impl Drop for BlockPool {
    fn drop(&mut self) {
        let idle = self.idle.get_mut().unwrap_or_else(PoisonError::into_inner);
        for buffer in idle.iter_mut() {
            wipe(buffer);
        }
    }
}

/// The production [`PasswordHasher`]: argon2id (v1.3) with a random
/// 16-byte salt per hash, producing PHC strings such as
/// `$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`.
///
/// Verification recomputes the hash with the parameters stored in the PHC
/// string and compares in constant time. It works in memory borrowed from
/// a pool of pre-faulted buffers (one per CPU is kept), so a verification
/// against a stored hash and [`dummy_verify`](PasswordHasher::dummy_verify)
/// (the unknown-username path) cost the same. Hashing is deliberately slow
/// (tens of milliseconds): call it from a blocking context (e.g.
/// `tokio::task::spawn_blocking`), not on an async executor thread.
pub struct Argon2PasswordHasher {
    config: Argon2Config,
    argon2: Argon2<'static>,
    dummy_hash: SecretString,
    pool: BlockPool,
}

impl Argon2PasswordHasher {
    /// A hasher with the given cost. Makes one hash (for
    /// [`dummy_verify`](PasswordHasher::dummy_verify)), so it takes as long
    /// as one login.
    pub fn new(config: Argon2Config) -> Result<Self, CryptoError> {
        let params = config.params()?;
        let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let pool = BlockPool::new(params.block_count(), threads);
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let mut hasher = Self {
            config,
            argon2,
            dummy_hash: SecretString::from(String::new()),
            pool,
        };
        let dummy_password = generate_token("")?;
        hasher.dummy_hash = hasher.hash(&dummy_password)?;
        Ok(hasher)
    }

    /// A hasher at the OWASP defaults.
    pub fn owasp() -> Result<Self, CryptoError> {
        Self::new(Argon2Config::OWASP)
    }

    /// The configured cost.
    pub fn config(&self) -> &Argon2Config {
        &self.config
    }

    fn parse<'a>(&self, hash: &'a SecretString) -> Result<PasswordHash<'a>, PasswordHashError> {
        let parsed = PasswordHash::new(hash.expose_secret())
            .map_err(|_| PasswordHashError::MalformedHash)?;
        Algorithm::try_from(parsed.algorithm).map_err(|_| PasswordHashError::MalformedHash)?;
        let params = Params::try_from(&parsed).map_err(|_| PasswordHashError::MalformedHash)?;
        if params.m_cost() > self.config.max_verify_memory_kib
            || params.t_cost() > Argon2Config::MAX_VERIFY_ITERATIONS
            || params.p_cost() > Argon2Config::MAX_VERIFY_PARALLELISM
        {
            return Err(PasswordHashError::MalformedHash);
        }
        Ok(parsed)
    }
}

impl PasswordHasher for Argon2PasswordHasher {
    fn hash(&self, password: &SecretString) -> Result<SecretString, PasswordHashError> {
        let salt_bytes = random_bytes::<16>().map_err(|_| PasswordHashError::Hashing)?;
        let salt =
            SaltString::encode_b64(salt_bytes.as_ref()).map_err(|_| PasswordHashError::Hashing)?;
        let hash = self
            .argon2
            .hash_password(password.expose_secret().as_bytes(), &salt)
            .map_err(|_| PasswordHashError::Hashing)?;
        Ok(SecretString::from(hash.to_string()))
    }

    fn verify(
        &self,
        password: &SecretString,
        hash: &SecretString,
    ) -> Result<bool, PasswordHashError> {
        fn malformed<E>(_: E) -> PasswordHashError {
            PasswordHashError::MalformedHash
        }
        let parsed = self.parse(hash)?;
        let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
            return Err(PasswordHashError::MalformedHash);
        };
        let algorithm = Algorithm::try_from(parsed.algorithm).map_err(malformed)?;
        let version = match parsed.version {
            Some(v) => Version::try_from(v).map_err(malformed)?,
            None => Version::default(),
        };
        let params = Params::try_from(&parsed).map_err(malformed)?;
        let mut salt_buffer = [0_u8; 64];
        let salt = salt.decode_b64(&mut salt_buffer).map_err(malformed)?;
        let argon2 = Argon2::new(algorithm, version, params);
        let mut computed = Zeroizing::new(vec![0_u8; expected.len()]);
        self.pool
            .with_blocks(argon2.params().block_count(), |blocks| {
                argon2.hash_password_into_with_memory(
                    password.expose_secret().as_bytes(),
                    salt,
                    &mut computed,
                    blocks,
                )
            })
            .map_err(|_| PasswordHashError::MalformedHash)?;
        Ok(bool::from(computed.as_slice().ct_eq(expected.as_bytes())))
    }

    fn needs_rehash(&self, hash: &SecretString) -> bool {
        let Ok(parsed) = self.parse(hash) else {
            return true;
        };
        let Ok(params) = Params::try_from(&parsed) else {
            return true;
        };
        let output_len = parsed.hash.map_or(0, |output| output.len());
        Algorithm::try_from(parsed.algorithm) != Ok(Algorithm::Argon2id)
            || parsed.version != Some(u32::from(Version::V0x13))
            || params.m_cost() < self.config.memory_kib
            || params.t_cost() < self.config.iterations
            || params.p_cost() < self.config.parallelism
            || output_len < self.config.output_len
    }

    fn dummy_verify(&self, password: &SecretString) {
        // Same parameters, same code path as a real verification; the result
        // is meaningless and discarded.
        let _ = self.verify(password, &self.dummy_hash);
    }
}

impl fmt::Debug for Argon2PasswordHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Argon2PasswordHasher")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> Argon2PasswordHasher {
        Argon2PasswordHasher::new(Argon2Config {
            memory_kib: 256,
            iterations: 1,
            ..Argon2Config::OWASP
        })
        .unwrap()
    }

    fn secret(text: &str) -> SecretString {
        SecretString::from(text)
    }

    #[test]
    fn hashes_are_salted_phc_strings_that_verify() {
        let hasher = cheap();
        let a = hasher.hash(&secret("hunter2")).unwrap();
        let b = hasher.hash(&secret("hunter2")).unwrap();
        assert!(
            a.expose_secret()
                .starts_with("$argon2id$v=19$m=256,t=1,p=1$")
        );
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert!(hasher.verify(&secret("hunter2"), &a).unwrap());
        assert!(!hasher.verify(&secret("hunter3"), &a).unwrap());
        assert!(!hasher.verify(&secret(""), &a).unwrap());
    }

    #[test]
    fn reference_vector_verifies() {
        // phc-winner-argon2 src/test.c: argon2id, t=2, m=2^16, p=1.
        let hasher = Argon2PasswordHasher::new(Argon2Config::OWASP).unwrap();
        let phc = secret(
            "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
        );
        assert!(hasher.verify(&secret("password"), &phc).unwrap());
        assert!(!hasher.verify(&secret("passwore"), &phc).unwrap());
        assert!(!hasher.needs_rehash(&phc));
    }

    #[test]
    fn malformed_and_hostile_hashes_are_refused() {
        let hasher = cheap();
        for bad in [
            "",
            "plaintext",
            "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
            "$argon2id$v=19$m=4194304,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
            "$argon2id$v=19$m=256,t=1000,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
        ] {
            assert!(
                matches!(
                    hasher.verify(&secret("x"), &secret(bad)),
                    Err(PasswordHashError::MalformedHash)
                ),
                "{bad}"
            );
            assert!(hasher.needs_rehash(&secret(bad)), "{bad}");
        }
    }

    #[test]
    fn needs_rehash_when_parameters_were_raised() {
        let old = cheap();
        let hash = old.hash(&secret("pw")).unwrap();
        assert!(!old.needs_rehash(&hash));
        let stronger = Argon2PasswordHasher::new(Argon2Config {
            memory_kib: 512,
            iterations: 1,
            ..Argon2Config::OWASP
        })
        .unwrap();
        assert!(stronger.needs_rehash(&hash));
        assert!(
            stronger.verify(&secret("pw"), &hash).unwrap(),
            "old hashes still verify"
        );
        let more_passes = Argon2PasswordHasher::new(Argon2Config {
            memory_kib: 256,
            iterations: 2,
            ..Argon2Config::OWASP
        })
        .unwrap();
        assert!(more_passes.needs_rehash(&hash));
        let weaker = Argon2PasswordHasher::new(Argon2Config {
            memory_kib: 128,
            iterations: 1,
            ..Argon2Config::OWASP
        })
        .unwrap();
        assert!(!weaker.needs_rehash(&hash), "a stronger hash is kept");
        // argon2i hashes (migrated from elsewhere) verify but must be replaced.
        let argon2i = Argon2::new(
            Algorithm::Argon2i,
            Version::V0x13,
            Params::new(256, 1, 1, Some(32)).unwrap(),
        )
        .hash_password(b"pw", &SaltString::encode_b64(b"0123456789abcdef").unwrap())
        .unwrap()
        .to_string();
        assert!(old.verify(&secret("pw"), &secret(&argon2i)).unwrap());
        assert!(old.needs_rehash(&secret(&argon2i)));
    }

    #[test]
    fn dummy_verify_runs_and_the_config_is_checked() {
        let hasher = cheap();
        hasher.dummy_verify(&secret("anything"));
        assert!(
            hasher
                .dummy_hash
                .expose_secret()
                .starts_with("$argon2id$v=19$m=256,t=1,p=1$")
        );
        assert!(
            Argon2PasswordHasher::new(Argon2Config {
                memory_kib: 1 << 20,
                ..Argon2Config::OWASP
            })
            .is_err()
        );
        assert!(
            Argon2PasswordHasher::new(Argon2Config {
                iterations: 0,
                ..Argon2Config::OWASP
            })
            .is_err()
        );
        assert!(!format!("{hasher:?}").contains("argon2id$"));
    }
}
