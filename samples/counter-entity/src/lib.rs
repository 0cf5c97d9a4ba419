//! Counter, the durable entity of the Durable Functions samples: a number
//! kept by the host under an entity ID such as `@counter@visits`, changed
//! one operation at a time, never replayed.
//!
//! Operations (names are case-insensitive):
//! - `add` adds its input (a number), `reset` sets it to zero;
//! - `incr` and `decr` add 1 and -1: the operations of E3_Counter (the
//!   `counter` sample), which is an orchestrator that continues as new
//!   after each one; an entity does the same with no history at all;
//! - `get` reads it (0 for a counter that does not exist yet), `delete`
//!   removes it.
//!
//! Each operation returns the value afterwards. `AddAndGet` shows both ways
//! an orchestrator reaches an entity: it signals `add` (fire and forget)
//! and then calls `get`, which sees the addition, since one sender's
//! operations apply in the order sent.

use reprise_sdk::{EntityContext, EntityId, Error, OrchestrationContext};
use serde::Deserialize;

fn counter(ctx: &mut EntityContext) -> Result<i64, Error> {
    let mut value: i64 = ctx.state_or_default()?;
    match ctx.operation() {
        "add" => value = add(value, ctx.input()?)?,
        "incr" => value = add(value, 1)?,
        "decr" => value = add(value, -1)?,
        "reset" => value = 0,
        "get" => return Ok(value),
        "delete" => {
            ctx.delete_state();
            return Ok(0);
        }
        other => {
            return Err(Error::new(format!("Counter has no operation '{other}'"))
                .with_kind("unknown-operation")
                .non_retryable());
        }
    }
    ctx.set_state(value)?;
    Ok(value)
}

fn add(value: i64, amount: i64) -> Result<i64, Error> {
    value.checked_add(amount).ok_or_else(|| {
        Error::new(format!("{value} + {amount} overflows"))
            .with_kind("overflow")
            .non_retryable()
    })
}

#[derive(Deserialize)]
struct AddRequest {
    /// Which counter: the key of `@counter@{key}`.
    key: String,
    amount: i64,
}

async fn add_and_get(ctx: OrchestrationContext) -> Result<i64, Error> {
    let request: AddRequest = ctx.input()?;
    let counter = EntityId::new("Counter", request.key);
    ctx.signal_entity(&counter, "add", request.amount)?;
    ctx.call_entity(&counter, "get", ()).await
}

reprise_sdk::export! {
    orchestrators { "AddAndGet" => add_and_get }
    entities { "Counter" => counter }
}

#[cfg(test)]
mod tests {
    use reprise_sdk::testing::{EntityTest, OrchestrationTest, Outcome};
    use serde_json::json;

    use super::*;

    #[test]
    fn add_reset_and_get_change_and_read_the_value() {
        let mut test = EntityTest::new(counter);
        assert_eq!(test.call::<i64>("get", ()), Ok(0));
        assert_eq!(test.state::<i64>(), None, "reading creates nothing");
        assert_eq!(test.call::<i64>("add", 5), Ok(5));
        assert_eq!(test.call::<i64>("ADD", -2), Ok(3), "case-insensitive");
        assert_eq!(test.call::<i64>("reset", ()), Ok(0));
        assert_eq!(test.state::<i64>(), Some(0));
    }

    #[test]
    fn incr_and_decr_are_the_operations_of_e3_counter() {
        let mut test = EntityTest::new(counter).with_state(41);
        assert_eq!(test.call::<i64>("incr", ()), Ok(42));
        assert_eq!(test.call::<i64>("decr", ()), Ok(41));
    }

    #[test]
    fn delete_removes_the_counter() {
        let mut test = EntityTest::new(counter).with_state(7);
        assert_eq!(test.call::<i64>("delete", ()), Ok(0));
        assert_eq!(test.state::<i64>(), None);
    }

    #[test]
    fn a_failed_operation_leaves_the_value_as_it_was() {
        let mut test = EntityTest::new(counter).with_state(i64::MAX);
        let overflow = test.call::<i64>("incr", ()).unwrap_err();
        assert_eq!(overflow.kind(), "overflow");
        let unknown = test.call::<i64>("double", ()).unwrap_err();
        assert_eq!(unknown.kind(), "unknown-operation");
        assert_eq!(test.state::<i64>(), Some(i64::MAX));
    }

    #[test]
    fn add_and_get_signals_then_reads_the_counter() {
        let visits = EntityId::new("Counter", "visits");
        let mut test = OrchestrationTest::new(add_and_get)
            .input(json!({ "key": "visits", "amount": 3 }))
            .entity("Counter", counter)
            .entity_state(&visits, 10);
        assert_eq!(test.run(), Outcome::Completed(json!(13)));
        assert_eq!(test.signals()[0].target, visits);
        assert_eq!(test.entity_state_of::<i64>(&visits), Some(13));
    }
}
