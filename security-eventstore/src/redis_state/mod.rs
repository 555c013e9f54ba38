//! Redis (feature `redis`): the state the replicas of an authentication
//! service share where speed matters most, each check one round trip (a
//! Lua script, atomic on the server).

mod attempts;
mod connection;
mod rate_limit;

pub use attempts::RedisAttemptLedger;
pub use connection::{REDIS_KEY_PREFIX, REDIS_URL, RedisConfig, RedisConnection};
pub use rate_limit::RedisRateLimiter;
