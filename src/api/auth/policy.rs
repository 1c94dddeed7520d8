//! Who may call which route: the one table the authorization middleware reads, and from which
//! the README's role matrix is generated (a test fails when the two differ).

use axum::http::Method;

use crate::store::token::Role;

/// What a route asks of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Nothing: anyone may call it.
    Public,
    /// A token of at least this role.
    AtLeast(Role),
    /// A launcher for the jobs it launched, an admin for any job (the handler checks the job).
    OwnJobs,
}

impl Access {
    /// Whether `role` may call a route with this access at all (for [`Access::OwnJobs`]: on
    /// some job).
    pub fn admits(self, role: Role) -> bool {
        match self {
            Access::Public => true,
            Access::AtLeast(needed) => role >= needed,
            Access::OwnJobs => role >= Role::Launcher,
        }
    }

    /// The weakest role it admits.
    pub fn weakest_role(self) -> Option<Role> {
        match self {
            Access::Public => None,
            Access::AtLeast(needed) => Some(needed),
            Access::OwnJobs => Some(Role::Launcher),
        }
    }

    /// What the matrix shows for `role`.
    fn cell(self, role: Role) -> &'static str {
        match self {
            Access::Public => "yes (no token)",
            Access::OwnJobs if role == Role::Launcher => "own jobs",
            _ if self.admits(role) => "yes",
            _ => "no (403)",
        }
    }
}

/// What `method` on the route `route` (as matched: `/jobs/{id}`, not `/jobs/0192…`) asks of its
/// caller. Reading is for viewers, launching for launchers, cancelling for a job's launcher or
/// an admin, token management and the retention status for admins; any other writing route is
/// for admins, so a new one is closed until this table opens it.
pub fn access(method: &Method, route: &str) -> Access {
    let reads = *method == Method::GET || *method == Method::HEAD;
    if route == "/healthz" || route == "/" || route.starts_with("/ui/") {
        return Access::Public;
    }
    if route == "/tokens" || route.starts_with("/tokens/") || route == "/retention" {
        return Access::AtLeast(Role::Admin);
    }
    if *method == Method::POST && route.starts_with("/experiments/") {
        return Access::AtLeast(Role::Launcher);
    }
    if *method == Method::POST && route == "/jobs/{id}/cancel" {
        return Access::OwnJobs;
    }
    if reads { Access::AtLeast(Role::Viewer) } else { Access::AtLeast(Role::Admin) }
}

/// The role matrix of every operation in `api`, as a Markdown table.
pub fn matrix(api: &utoipa::openapi::OpenApi) -> String {
    let mut table = String::from("| method | route | viewer | launcher | admin |\n|---|---|---|---|---|\n");
    for (route, method) in operations(api) {
        let access = access(&method, &route);
        let cells: Vec<&str> = Role::ALL.into_iter().map(|role| access.cell(role)).collect();
        table.push_str(&format!("| `{method}` | `{route}` | {} |\n", cells.join(" | ")));
    }
    table
}

/// Every operation of `api`: its route and method, in the document's order.
pub fn operations(api: &utoipa::openapi::OpenApi) -> Vec<(String, Method)> {
    let mut operations = Vec::new();
    for (route, item) in &api.paths.paths {
        let methods = [
            (Method::GET, item.get.is_some()),
            (Method::POST, item.post.is_some()),
            (Method::PUT, item.put.is_some()),
            (Method::PATCH, item.patch.is_some()),
            (Method::DELETE, item.delete.is_some()),
        ];
        operations.extend(methods.into_iter().filter(|(_, present)| *present).map(|(method, _)| (route.clone(), method)));
    }
    operations
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_is_for_viewers_launching_for_launchers_and_the_rest_for_admins() {
        assert_eq!(access(&Method::GET, "/healthz"), Access::Public);
        assert_eq!(access(&Method::GET, "/ui/{file}"), Access::Public);
        assert_eq!(access(&Method::GET, "/jobs/{id}/events"), Access::AtLeast(Role::Viewer));
        assert_eq!(access(&Method::POST, "/experiments/{kind}"), Access::AtLeast(Role::Launcher));
        assert_eq!(access(&Method::POST, "/jobs/{id}/cancel"), Access::OwnJobs);
        assert_eq!(access(&Method::GET, "/tokens"), Access::AtLeast(Role::Admin));
        assert_eq!(access(&Method::GET, "/retention"), Access::AtLeast(Role::Admin));
        assert_eq!(access(&Method::DELETE, "/jobs/{id}"), Access::AtLeast(Role::Admin), "an unknown write is closed");
        assert!(Access::OwnJobs.admits(Role::Launcher) && !Access::OwnJobs.admits(Role::Viewer));
    }
}
