//! Transfer: moves money between two `Account` entities, atomically as far
//! as anyone else can see.
//!
//! `Account` is an entity holding a balance in cents: `deposit` and
//! `withdraw` take a positive amount (a withdrawal beyond the balance fails
//! with kind `insufficient-funds` and changes nothing), `balance` reads it.
//!
//! `Transfer` (input `{"from", "to", "amount"}`, account keys and cents)
//! locks both accounts, so no other orchestration's operation can come
//! between its reading the balance and its moving the money; checks the
//! balance with a call; withdraws and deposits; and releases the accounts.
//! Its result says whether the money moved and the balances afterwards. A
//! transfer the balance does not cover completes with `transferred: false`
//! rather than failing: it is an answer, not an error.

use reprise_sdk::{EntityContext, EntityId, Error, OrchestrationContext};
use serde::{Deserialize, Serialize};

fn account(ctx: &mut EntityContext) -> Result<u64, Error> {
    let balance: u64 = ctx.state_or_default()?;
    let balance = match ctx.operation() {
        "balance" => return Ok(balance),
        "deposit" => balance
            .checked_add(amount(ctx)?)
            .ok_or_else(|| invalid("the balance would overflow"))?,
        "withdraw" => {
            let amount = amount(ctx)?;
            balance.checked_sub(amount).ok_or_else(|| {
                Error::new(format!(
                    "cannot withdraw {amount} from a balance of {balance}"
                ))
                .with_kind("insufficient-funds")
                .non_retryable()
            })?
        }
        other => return Err(invalid(&format!("Account has no operation '{other}'"))),
    };
    ctx.set_state(balance)?;
    Ok(balance)
}

/// The operation's input: a positive amount.
fn amount(ctx: &EntityContext) -> Result<u64, Error> {
    match ctx.input::<u64>()? {
        0 => Err(invalid("the amount must be positive")),
        amount => Ok(amount),
    }
}

fn invalid(message: &str) -> Error {
    Error::new(message).with_kind("validation").non_retryable()
}

#[derive(Debug, Deserialize)]
struct TransferRequest {
    from: String,
    to: String,
    amount: u64,
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
struct TransferResult {
    transferred: bool,
    from_balance: u64,
    to_balance: u64,
}

async fn transfer(ctx: OrchestrationContext) -> Result<TransferResult, Error> {
    let request: TransferRequest = ctx.input()?;
    if request.from == request.to {
        return Err(invalid("cannot transfer from an account to itself"));
    }
    let from = EntityId::new("Account", &request.from);
    let to = EntityId::new("Account", &request.to);
    let section = ctx.lock_entities(&[from.clone(), to.clone()]).await?;
    let available: u64 = ctx.call_entity(&from, "balance", ()).await?;
    let result = if available < request.amount {
        let to_balance = ctx.call_entity(&to, "balance", ()).await?;
        TransferResult {
            transferred: false,
            from_balance: available,
            to_balance,
        }
    } else {
        let from_balance = ctx.call_entity(&from, "withdraw", request.amount).await?;
        let to_balance = ctx.call_entity(&to, "deposit", request.amount).await?;
        TransferResult {
            transferred: true,
            from_balance,
            to_balance,
        }
    };
    section.release();
    Ok(result)
}

reprise_sdk::export! {
    orchestrators { "Transfer" => transfer }
    entities { "Account" => account }
}

#[cfg(test)]
mod tests {
    use reprise_sdk::testing::{EntityTest, OrchestrationTest, Outcome};
    use reprise_sdk::wire::Action;
    use serde_json::json;

    use super::*;

    fn accounts(alice: u64, bob: u64) -> OrchestrationTest {
        OrchestrationTest::new(transfer)
            .entity("Account", account)
            .entity_state(&EntityId::new("Account", "alice"), alice)
            .entity_state(&EntityId::new("Account", "bob"), bob)
    }

    fn balance_of(test: &OrchestrationTest, key: &str) -> Option<u64> {
        test.entity_state_of(&EntityId::new("Account", key))
    }

    #[test]
    fn an_account_takes_deposits_and_covered_withdrawals() {
        let mut test = EntityTest::new(account);
        assert_eq!(test.call::<u64>("deposit", 100), Ok(100));
        assert_eq!(test.call::<u64>("withdraw", 30), Ok(70));
        assert_eq!(test.call::<u64>("Balance", ()), Ok(70));
    }

    #[test]
    fn an_account_refuses_overdrafts_and_empty_amounts_unchanged() {
        let mut test = EntityTest::new(account).with_state(10);
        let overdraft = test.call::<u64>("withdraw", 11).unwrap_err();
        assert_eq!(overdraft.kind(), "insufficient-funds");
        assert!(!overdraft.is_retryable());
        assert_eq!(
            test.call::<u64>("deposit", 0).unwrap_err().kind(),
            "validation"
        );
        assert_eq!(test.state::<u64>(), Some(10));
    }

    #[test]
    fn a_covered_transfer_moves_the_money_inside_a_lock() {
        let mut test =
            accounts(100, 5).input(json!({ "from": "alice", "to": "bob", "amount": 40 }));
        assert_eq!(
            test.run().output(),
            Some(TransferResult {
                transferred: true,
                from_balance: 60,
                to_balance: 45,
            })
        );
        assert_eq!(
            (balance_of(&test, "alice"), balance_of(&test, "bob")),
            (Some(60), Some(45))
        );
        assert_eq!(
            test.lock_requests(),
            [vec![
                EntityId::new("account", "alice"),
                EntityId::new("account", "bob")
            ]]
        );
        let last_two = &test.actions()[test.actions().len() - 2..];
        assert!(matches!(
            last_two,
            [Action::UnlockEntities, Action::Complete(_)]
        ));
    }

    #[test]
    fn a_transfer_the_balance_does_not_cover_moves_nothing() {
        let mut test = accounts(10, 5).input(json!({ "from": "alice", "to": "bob", "amount": 40 }));
        assert_eq!(
            test.run().output(),
            Some(TransferResult {
                transferred: false,
                from_balance: 10,
                to_balance: 5,
            })
        );
        assert_eq!(
            (balance_of(&test, "alice"), balance_of(&test, "bob")),
            (Some(10), Some(5))
        );
        let calls: Vec<&str> = test
            .entity_calls()
            .iter()
            .map(|call| call.operation.as_str())
            .collect();
        assert_eq!(calls, ["balance", "balance"]);
    }

    #[test]
    fn a_transfer_to_the_same_account_fails_without_locking() {
        let mut test =
            accounts(10, 5).input(json!({ "from": "alice", "to": "alice", "amount": 1 }));
        let outcome = test.run();
        assert_eq!(outcome.failure().map(Error::kind), Some("validation"));
        assert!(test.lock_requests().is_empty());
    }

    #[test]
    fn a_transfer_into_a_new_account_creates_it() {
        let mut test = OrchestrationTest::new(transfer)
            .entity("Account", account)
            .entity_state(&EntityId::new("Account", "alice"), 3)
            .input(json!({ "from": "alice", "to": "carol", "amount": 3 }));
        assert_eq!(
            test.run(),
            Outcome::Completed(json!({
                "transferred": true,
                "fromBalance": 0,
                "toBalance": 3,
            }))
        );
        assert_eq!(balance_of(&test, "carol"), Some(3));
    }
}
