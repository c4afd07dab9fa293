// @generated automatically by Diesel CLI.

diesel::table! {
    student (id) {
        id -> Int4,
        first_name -> Text,
        last_name -> Text,
        major -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        email -> Nullable<Text>,
    }
}
