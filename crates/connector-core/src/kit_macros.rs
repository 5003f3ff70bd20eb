//! The provider kit's macros: the API client and the connector struct every API-client provider
//! declares, the `Connector` methods that describe it and mount its routes, its route table, and
//! the connect and disconnect routes with their `#[utoipa::path]` (an attribute a function cannot
//! write for another crate).

/// Declare a provider's connector: the shared [`Platform`](crate::Platform), the provider's API
/// client and its [`ProviderId`](crate::ProviderId), with `new(platform, client)`, `client()`,
/// `platform()`, a `Debug` that shows the client only, and its
/// [`ProviderName`](crate::kit::ProviderName) in documentation (`$what`); with
/// `pick_connection or "<404 message>";` also `pick_connection(user, req)`
/// ([`kit::pick_connection`](crate::kit::pick_connection)). The fields (`platform`, `client`,
/// `provider`) are private to the crate that declares it.
///
/// ```ignore
/// connector_core::provider_connector! {
///     /// The Scaleway connector.
///     pub struct ScalewayConnector(ScalewayClient) = PROVIDER_ID, "Scaleway";
/// }
/// ```
#[macro_export]
macro_rules! provider_connector {
    (
        $(#[$meta:meta])* $vis:vis struct $name:ident($client:ty) = $id:expr, $what:literal;
        $(pick_connection or $none:literal;)?
    ) => {
        impl $crate::kit::ProviderName for $name {
            const NAME: &'static str = $what;
        }

        $(#[$meta])*
        $vis struct $name {
            platform: $crate::Platform,
            client: $client,
            provider: $crate::ProviderId,
        }

        impl ::std::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("client", &self.client)
                    .finish()
            }
        }

        impl $name {
            pub fn new(platform: $crate::Platform, client: $client) -> Self {
                Self {
                    platform,
                    client,
                    provider: $crate::ProviderId::from_static($id),
                }
            }

            pub fn client(&self) -> &$client {
                &self.client
            }

            pub fn platform(&self) -> &$crate::Platform {
                &self.platform
            }

            $(
                /// The caller's connection that `connectionId` (query) names, else their most
                /// recently updated one with this provider; 404 with this message when none.
                pub(crate) async fn pick_connection(
                    &self,
                    user: &$crate::UserId,
                    req: &$crate::kit::__private::actix_web::HttpRequest,
                ) -> ::std::result::Result<$crate::ConnectionRecord, $crate::ApiError> {
                    let (p, provider) = (&self.platform, &self.provider);
                    $crate::kit::pick_connection(p, req, user, provider, $what, $none).await
                }
            )?
        }
    };
}

/// Inside `impl Connector for …`: `configure` mounts the routes with `$configure(web::Data, cfg)`
/// (the connector as their app data) and `openapi` answers `$api`'s document
/// (`#[derive(utoipa::OpenApi)]`).
///
/// With a third argument, also `frontend_summary` as `$summary(&ProviderInfo, &ConnectionRecord)`
/// (how Aurora's frontend shows a connection, §9.1).
///
/// ```ignore
/// connector_core::connector_routes!(routes::configure, ScalewayApi);
/// connector_core::connector_routes!(routes::configure, ScalewayApi, frontend::summary);
/// ```
#[macro_export]
macro_rules! connector_routes {
    ($configure:path, $api:ty, $summary:path) => {
        $crate::connector_routes!($configure, $api);

        fn frontend_summary(
            &self,
            connection: &$crate::ConnectionRecord,
        ) -> $crate::FrontendSummary {
            $summary(&self.info(), connection)
        }
    };
    ($configure:path, $api:ty) => {
        fn configure(
            self: ::std::sync::Arc<Self>,
            cfg: &mut $crate::kit::__private::actix_web::web::ServiceConfig,
        ) {
            $configure(
                $crate::kit::__private::actix_web::web::Data::from(self),
                cfg,
            );
        }

        fn openapi(&self) -> $crate::kit::__private::utoipa::openapi::OpenApi {
            <$api as $crate::kit::__private::utoipa::OpenApi>::openapi()
        }
    };
}

/// A provider's disconnect route, `POST $path` (tag `$tag`), with its `#[utoipa::path]`: it removes
/// the caller's connection named by `connectionId` (body or query), or the one of the account the
/// body `$body` names, else all of the caller's connections with this provider
/// ([`kit::disconnect_one_or_all`](crate::kit::disconnect_one_or_all)), and answers
/// [`DisconnectResponse`](crate::DisconnectResponse). `$what` names the provider in messages and
/// in the 404; `$body_doc` describes the optional body and `$bad` the 400. An optional
/// `then f` (a `fn(usize, &mut DisconnectResponse)`) completes the answer once the connections are
/// removed.
///
/// The handler is `pub(crate) async fn $name(web::Data<$connector>, Caller, HttpRequest,
/// web::Payload)`; `$connector` has a `platform` field (see [`crate::provider_connector!`]). The
/// crate that uses it depends on `utoipa` and `uuid`, and has `DisconnectResponse`, `ErrorBody` and
/// [`BodyRefusals`](crate::kit::BodyRefusals) in scope where it expands (the names its OpenAPI
/// document lists).
///
/// ```ignore
/// connector_core::disconnect_route!(
///     /// Remove the caller's Scaleway connections (or one of them).
///     disconnect: ScalewayConnector, DisconnectRequest, "/scaleway_api/scaleway/disconnect",
///     "scaleway", "Scaleway",
///     "Optional; without a connection id every Scaleway connection of the caller is removed",
///     "Malformed body or connectionId, or different ids in body and query",
/// );
/// ```
#[macro_export]
macro_rules! disconnect_route {
    (
        $(#[$meta:meta])*
        $name:ident: $connector:ident, $body:ident, $path:literal, $tag:literal, $what:literal,
        $body_doc:literal, $bad:literal $(, then $after:expr)? $(,)?
    ) => {
        $(#[$meta])*
        #[utoipa::path(
            post,
            path = $path,
            tag = $tag,
            params(
                ("X-User-ID" = String, Header, description = "The caller's user id"),
                ("connectionId" = Option<uuid::Uuid>, Query, description = "Remove only this connection (also accepted in the body)"),
            ),
            request_body(content = Option<$body>, description = $body_doc, content_type = "application/json"),
            responses(
                (status = 200, description = "How many connections were removed", body = DisconnectResponse),
                (status = 400, description = $bad, body = ErrorBody),
                (status = 404, description = concat!("No such ", $what, " connection of the caller"), body = ErrorBody),
                BodyRefusals,
            )
        )]
        pub(crate) async fn $name(
            connector: $crate::kit::__private::actix_web::web::Data<$connector>,
            caller: $crate::Caller,
            req: $crate::kit::__private::actix_web::HttpRequest,
            payload: $crate::kit::__private::actix_web::web::Payload,
        ) -> ::std::result::Result<$crate::kit::__private::actix_web::HttpResponse, $crate::ApiError> {
            let n = $crate::kit::disconnect_one_or_all::<$body>(
                &connector.platform,
                connector.get_ref(),
                &caller,
                &req,
                payload,
                $what,
            )
            .await?;
            #[allow(unused_mut)]
            let mut resp = $crate::DisconnectResponse::new(n, $what);
            $(($after)(n, &mut resp);)?
            Ok($crate::kit::__private::actix_web::HttpResponse::Ok().json(resp))
        }
    };
}

/// Declare a provider's API client over an [`ApiBase`](crate::upstream::ApiBase): `new(base_url,
/// http, metrics)` (the URL checked by [`kit::parse_base_url`](crate::kit::parse_base_url), metric
/// label `$provider`, per-request timeout `$timeout`), `from_settings`, `with_timeout`, `base_url`, `timeout` and
/// `url(segments)`; `Clone`, and a `Debug` that shows the base URL and the timeout. The provider
/// writes its calls in its own `impl` with `self.base`.
///
/// ```ignore
/// connector_core::api_client! {
///     /// The Scaleway API client.
///     pub struct ScalewayClient = PROVIDER, DEFAULT_TIMEOUT;
/// }
/// ```
#[macro_export]
macro_rules! api_client {
    ($(#[$meta:meta])* $vis:vis struct $name:ident = $provider:expr, $timeout:expr;) => {
        $(#[$meta])*
        #[derive(Clone, Debug)]
        $vis struct $name {
            base: $crate::upstream::ApiBase,
        }

        impl $name {
            /// A client of the API at `base_url`, sharing the platform's HTTP client and metrics.
            pub fn new(
                base_url: &str,
                http: $crate::kit::__private::reqwest::Client,
                metrics: ::std::sync::Arc<$crate::Metrics>,
            ) -> ::std::result::Result<Self, String> {
                $crate::upstream::ApiBase::new($provider, base_url, http, metrics, $timeout)
                    .map(|base| Self { base })
            }

            /// The client from the platform's settings under `prefix` (`AURORA_SCALEWAY_`):
            /// `API_URL`, else `default_url`, and `TIMEOUT_SECS`
            /// ([`kit::api_client`](crate::kit::api_client)).
            pub fn from_settings(
                platform: &$crate::Platform,
                prefix: &str,
                default_url: &str,
            ) -> ::std::result::Result<Self, $crate::BuildError> {
                $crate::kit::api_client(platform, prefix, default_url, |url, http, metrics, timeout| {
                    Ok(Self::new(url, http, metrics)?.with_timeout(timeout))
                })
            }

            /// Use another per-request timeout.
            pub fn with_timeout(self, timeout: ::std::time::Duration) -> Self {
                Self {
                    base: self.base.with_timeout(timeout),
                }
            }

            pub fn base_url(&self) -> &$crate::kit::__private::reqwest::Url {
                self.base.base_url()
            }

            pub fn timeout(&self) -> ::std::time::Duration {
                self.base.timeout()
            }

            /// `{base}/{segments…}`, each segment percent-encoded.
            pub fn url(&self, segments: &[&str]) -> $crate::kit::__private::reqwest::Url {
                self.base.url(segments)
            }
        }
    };
}

/// Declare the calls of a provider's API client: a `Copy` enum whose `as_str()` is each call's
/// metric label (`operation` of `aurora_provider_calls_total`, and of the log lines).
///
/// ```ignore
/// connector_core::api_operations! {
///     /// The API calls.
///     enum Op { Token = "token", ListDevices = "list_devices" }
/// }
/// ```
#[macro_export]
macro_rules! api_operations {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($op:ident = $label:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        $vis enum $name {
            $($op,)+
        }

        impl $name {
            fn as_str(self) -> &'static str {
                match self {
                    $($name::$op => $label,)+
                }
            }
        }
    };
}

/// A provider's route paths and its `configure(web::Data<$connector>, cfg)`: one `pub const` per
/// route (`$method` is `get` or `post`, `$handler` the handler), mounted in the order given with
/// the connector as their app data.
///
/// ```ignore
/// connector_core::provider_routes! {
///     ScalewayConnector;
///     post CONNECT_PATH = "/scaleway_api/scaleway/connect" => connect,
///     post DISCONNECT_PATH = "/scaleway_api/scaleway/disconnect" => disconnect,
/// }
/// ```
#[macro_export]
macro_rules! provider_routes {
    ($connector:ty; $($method:ident $const:ident = $path:literal => $handler:path),+ $(,)?) => {
        $(pub const $const: &str = $path;)+

        pub(crate) fn configure(
            connector: $crate::kit::__private::actix_web::web::Data<$connector>,
            cfg: &mut $crate::kit::__private::actix_web::web::ServiceConfig,
        ) {
            use $crate::kit::__private::actix_web::web;
            cfg.app_data(connector)
                $(.service(web::resource($const).route(web::$method().to($handler))))+;
        }
    };
}

/// A provider's connect route, `POST $path` (tag `$tag`), with its `#[utoipa::path]` (caller
/// header, JSON body `$body`; 200 `$resp`, 400 `$bad`, 422 `$rejected`, the upstream and body
/// refusals). The handler `pub(crate) async fn $name(web::Data<$connector>, Caller,
/// web::Json<$body>)` binds the body's `userId` to the caller, checks the body (`$body::check`),
/// drops it and runs the block with the connector, the caller and the checked input.
///
/// The crate that uses it depends on `utoipa`, and has `$resp`, `ErrorBody`,
/// [`CallerHeader`](crate::kit::CallerHeader), [`UpstreamRefusals`](crate::kit::UpstreamRefusals)
/// and [`BodyRefusals`](crate::kit::BodyRefusals) in scope where it expands.
///
/// ```ignore
/// connector_core::connect_route! {
///     /// Connect a Scaleway organization with an API key.
///     connect: ScalewayConnector, ConnectRequest => ConnectResponse,
///     "/scaleway_api/scaleway/connect", "scaleway",
///     ok "The key works; …", bad "A malformed field, …", rejected "Scaleway refused the key …";
///     |connector, caller, input| { … }
/// }
/// ```
#[macro_export]
macro_rules! connect_route {
    (
        $(#[$meta:meta])*
        $name:ident: $connector:ident, $body:ident => $resp:ident, $path:literal, $tag:literal,
        ok $ok:literal, bad $bad:literal, rejected $rejected:literal;
        |$connector_arg:ident, $caller:ident, $input:ident| $block:block
    ) => {
        $(#[$meta])*
        #[utoipa::path(
            post,
            path = $path,
            tag = $tag,
            params(CallerHeader),
            request_body = $body,
            responses(
                (status = 200, description = $ok, body = $resp),
                (status = 400, description = $bad, body = ErrorBody),
                (status = 422, description = $rejected, body = ErrorBody),
                UpstreamRefusals<$connector>,
                BodyRefusals,
            )
        )]
        pub(crate) async fn $name(
            $connector_arg: $crate::kit::__private::actix_web::web::Data<$connector>,
            $caller: $crate::Caller,
            body: $crate::kit::__private::actix_web::web::Json<$body>,
        ) -> ::std::result::Result<$crate::kit::__private::actix_web::HttpResponse, $crate::ApiError> {
            $caller.bind_owner(body.user_id.as_deref())?;
            let $input = body.check()?;
            drop(body);
            $block
        }
    };
}

/// Inside `impl Connector for …`: `info()` of a connector with a `provider` field (see
/// [`crate::provider_connector!`]): its display name, `AuthKind::$kind`, the capabilities and the
/// paths a caller reaches without a connection ([`ProviderInfo::new`](crate::ProviderInfo::new)).
///
/// ```ignore
/// connector_core::provider_info!("Scaleway", ApiKey, [MultiAccount, Credentials, Validate], [routes::CONNECT_PATH]);
/// ```
#[macro_export]
macro_rules! provider_info {
    ($what:literal, $kind:ident, [$($cap:ident),* $(,)?], [$($open:expr),* $(,)?]) => {
        fn info(&self) -> $crate::ProviderInfo {
            let caps = [$($crate::Capability::$cap),*];
            let (id, kind) = (self.provider.clone(), $crate::AuthKind::$kind);
            $crate::ProviderInfo::new(id, $what, kind, &caps, &[$($open),*])
        }
    };
}
