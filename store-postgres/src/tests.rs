//! The store contract, on a real PostgreSQL server started for the test
//! run (`reprise-testing-postgres`), a fresh database per test.

use reprise_testing_postgres::PostgresServer;

use super::PostgresStore;

fn store() -> ((), PostgresStore) {
    let url = PostgresServer::shared()
        .create_database()
        .expect("can create a database");
    ((), PostgresStore::open(&url).expect("can open the store"))
}

mod conformance {
    reprise_core::store_conformance_tests!(super::store);
}
