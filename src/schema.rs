// @generated automatically by Diesel CLI.

diesel::table! {
    api_token (id) {
        id -> Int4,
        name -> Text,
        scope -> Text,
        sha256 -> Bytea,
        created_at -> Timestamptz,
        last_used_at -> Nullable<Timestamptz>,
        revoked_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    idempotency_key (token_id, key) {
        token_id -> Int4,
        key -> Text,
        fingerprint -> Bytea,
        resource -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    student (id) {
        id -> Int4,
        first_name -> Text,
        last_name -> Text,
        major -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        email -> Nullable<Text>,
        enrolled_on -> Date,
    }
}

diesel::allow_tables_to_appear_in_same_query!(api_token, idempotency_key, student,);
